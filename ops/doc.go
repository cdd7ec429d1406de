// Package ops is the operator's surface of a running gateway, served on the
// status listener: GET /status (a documented JSON schema, [Status]),
// GET /metrics (Prometheus text format), GET /healthz (liveness),
// GET /readyz (readiness: is data moving), GET / (a read-only page with
// live plots, embedded in the binary) and, when enabled, pprof.
//
// It is fed by snapshots: the gateway turns its rooms' counters into a
// [Status] when asked (at the pace of scrapes and page polls, never per
// message), and hands readings and command outcomes to [Points] and
// [Commands], which keep bounded memory. ops imports no other room.
package ops
