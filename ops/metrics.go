package ops

import (
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// collector turns one Status snapshot per scrape into metrics: the rooms
// keep their counters, nothing is counted twice. Label values come from
// the config (identities, adapters, devices) or closed sets (reasons,
// kinds, statuses, exception codes), never from messages.
type collector struct {
	snapshot func() *Status
	points   func() (tracked int, untracked uint64)
}

// Describe sends nothing: the collector is unchecked, because which
// series exist follows the config and what happened (drop reasons seen).
func (c *collector) Describe(chan<- *prometheus.Desc) {}

type emitter struct {
	ch chan<- prometheus.Metric
}

func (e emitter) gauge(d *prometheus.Desc, v float64, labels ...string) {
	e.ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func (e emitter) counter(d *prometheus.Desc, v uint64, labels ...string) {
	e.ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

func (e emitter) histogram(d *prometheus.Desc, h Histogram, labels ...string) {
	b := make(map[float64]uint64, len(h.Buckets))
	for _, x := range h.Buckets {
		b[x.LE] = x.Count
	}
	e.ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum, b, labels...)
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("edgegw_"+name, help, labels, nil)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unix(t *time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

var (
	mReady     = desc("ready", "1 when /readyz answers ready: no identity stalled, buffer taking appends, every adapter reaching a device.")
	mNotReady  = desc("not_ready_reasons", "Reasons /readyz gives now, by kind.", "kind")
	mStart     = desc("start_time_seconds", "When the gateway started, in unix seconds.")
	mPointsT   = desc("plot_points", "Points whose values the local page keeps.")
	mPointsU   = desc("plot_points_untracked", "Points read but not kept for the page: the sample budget is used.")
	idLabels   = []string{"identity"}
	mConnected = desc("identity_connected", "1 when the identity's connection to the hub is up.", idLabels...)
	mQueued    = desc("identity_queued_messages", "Messages in the buffer not yet acknowledged by the hub.", idLabels...)
	mQueuedB   = desc("identity_queued_bytes", "Bytes of the identity's queued messages.", idLabels...)
	mOldest    = desc("identity_oldest_queued_age_seconds", "Age of the oldest queued message; 0 when none is queued.", idLabels...)
	mInFlight  = desc("identity_in_flight_messages", "Messages sent and not yet acknowledged.", idLabels...)
	mLastAck   = desc("identity_last_ack_timestamp_seconds", "When the hub last acknowledged, in unix seconds (absent before the first).", idLabels...)
	mSent      = desc("identity_messages_sent_total", "Messages published to the hub, re-sends included.", idLabels...)
	mResent    = desc("identity_messages_resent_total", "Messages published again after a reconnect.", idLabels...)
	mAcked     = desc("identity_messages_acknowledged_total", "Messages the hub acknowledged.", idLabels...)
	mUndeliv   = desc("identity_messages_undeliverable_total", "Messages skipped because the hub can never take them.", idLabels...)
	mIDDrops   = desc("identity_buffer_dropped_messages_total", "The identity's messages dropped by the buffer's retention, by reason.", "identity", "reason")
	mReconn    = desc("identity_reconnects_total", "Connections after the first, by why the one before ended.", "identity", "reason")
	mRenewals  = desc("identity_token_renewals_total", "Planned reconnects for a new SAS token.", idLabels...)
	mExpiry    = desc("identity_token_expiry_timestamp_seconds", "Expiry of the current SAS token, in unix seconds.", idLabels...)
	mCmdRecv   = desc("identity_commands_received_total", "Commands from the hub handed to the gateway.", idLabels...)
	mCmdThr    = desc("identity_commands_throttled_total", "Commands turned away because every command slot was taken.", idLabels...)
	mErrActive = desc("identity_error", "1 while the identity's last connection error stands (not cleared by a connect).", idLabels...)

	mBufRecords = desc("buffer_records", "Records stored in the buffer.")
	mBufBytes   = desc("buffer_stored_bytes", "Bytes stored, as counted against the buffer's limit.")
	mBufMax     = desc("buffer_max_bytes", "The buffer's size limit.")
	mBufDisk    = desc("buffer_disk_usage_bytes", "Allocated size of the buffer's directory.")
	mBufFree    = desc("buffer_disk_free_bytes", "Free bytes on the buffer's filesystem.")
	mBufFull    = desc("buffer_disk_full", "1 while appends are refused for lack of disk space.")
	mBufApp     = desc("buffer_appended_records_total", "Records appended.")
	mBufCommits = desc("buffer_commits_total", "Transactions committed, each one fsync: appends, acknowledgements, drops.")
	mBufAppCom  = desc("buffer_append_commits_total", "Commits that appended records; appended records divided by these is the messages per commit.")
	mBufErrs    = desc("buffer_append_errors_total", "Appends that failed (disk full, I/O error, too large).")
	mBufDrops   = desc("buffer_dropped_records_total", "Records dropped by retention, by reason.", "reason")
	mBufCompact = desc("buffer_compactions_total", "Compactions run to reclaim disk space.")

	adLabels      = []string{"adapter"}
	mLANClients   = desc("lan_clients", "LAN MQTT clients connected now.", adLabels...)
	mLANConnects  = desc("lan_connects_total", "LAN connects accepted.", adLabels...)
	mLANAuth      = desc("lan_auth_failures_total", "LAN connects refused.", adLabels...)
	mLANACL       = desc("lan_acl_denials_total", "LAN publishes, subscriptions and deliveries refused by the ACL.", adLabels...)
	mLANIn        = desc("lan_publishes_received_total", "LAN publishes taken in for the hub.", adLabels...)
	mLANStored    = desc("lan_publishes_stored_total", "LAN publishes stored and acknowledged.", adLabels...)
	mLANRefused   = desc("lan_publishes_refused_total", "LAN publishes not acknowledged, by reason.", "adapter", "reason")
	mLANClosed    = desc("lan_connections_closed_on_refusal_total", "MQTT 3.1.1 connections closed because a publish was refused.", adLabels...)
	mLANConnErr   = desc("lan_connection_errors_total", "LAN connections that ended with an error.", adLabels...)
	mLANSubDrops  = desc("lan_subscriber_drops_total", "Messages to slow LAN subscribers dropped by the broker.", adLabels...)
	mLANCommands  = desc("lan_commands_published_total", "Mapped commands (c2d rules, publish actions) published to LAN devices; relayed commands are not counted here.", adLabels...)
	mMBConnected  = desc("modbus_bus_connected", "1 when the bus's connection or port is open.", adLabels...)
	mMBConnects   = desc("modbus_bus_connects_total", "Successful connects or port opens.", adLabels...)
	mMBConnErrs   = desc("modbus_bus_connect_errors_total", "Failed connect attempts.", adLabels...)
	mMBDisconn    = desc("modbus_bus_disconnects_total", "Connections lost or dropped after link errors.", adLabels...)
	devLabels     = []string{"adapter", "device"}
	mMBUp         = desc("modbus_device_up", "1 when the device answered its last poll.", devLabels...)
	mMBPolls      = desc("modbus_device_polls_total", "Poll cycles that read at least one point.", devLabels...)
	mMBRequests   = desc("modbus_device_requests_total", "Requests sent: reads, writes, read-backs.", devLabels...)
	mMBReadings   = desc("modbus_device_readings_total", "Readings handed to the uplink and stored.", devLabels...)
	mMBRefused    = desc("modbus_device_readings_refused_total", "Readings the uplink refused.", devLabels...)
	mMBDropped    = desc("modbus_device_readings_dropped_total", "Readings dropped because the uplink was behind.", devLabels...)
	mMBWrites     = desc("modbus_device_writes_total", "Successful writes.", devLabels...)
	mMBWriteErrs  = desc("modbus_device_write_errors_total", "Failed writes.", devLabels...)
	mMBErrors     = desc("modbus_device_errors_total", "Failed requests by kind (exceptions are counted apart).", "adapter", "device", "kind")
	mMBTimeouts   = desc("modbus_device_timeouts_total", "Requests the device did not answer in time.", devLabels...)
	mMBExceptions = desc("modbus_device_exceptions_total", "Modbus exception responses, by exception code.", "adapter", "device", "code")
	mMBLatency    = desc("modbus_device_request_duration_seconds", "Round trip of each request.", devLabels...)
	mUAConnected  = desc("opcua_connected", "1 while the session with the OPC UA server is open.", adLabels...)
	mUAConnects   = desc("opcua_connects_total", "Sessions opened.", adLabels...)
	mUAConnErrs   = desc("opcua_connect_errors_total", "Failed attempts to open a session, untrusted server certificates included.", adLabels...)
	mUADisconn    = desc("opcua_disconnects_total", "Sessions lost.", adLabels...)
	mUAError      = desc("opcua_error", "1 while the adapter's last connection error stands (not cleared by a session opened since).", adLabels...)
	mUAUntrusted  = desc("opcua_untrusted_certificate", "1 once a server certificate was refused for not being trusted (its thumbprint is in /status).", adLabels...)
	mUAValues     = desc("opcua_device_values_total", "Point values passed up.", devLabels...)
	mUAReadings   = desc("opcua_device_readings_total", "Readings the uplink stored.", devLabels...)
	mUARefused    = desc("opcua_device_readings_refused_total", "Readings the uplink refused.", devLabels...)
	mUABad        = desc("opcua_device_bad_values_total", "Values left out for a Bad status, by status name (other: a code without a name).", "adapter", "device", "status")
	mUAUncertain  = desc("opcua_device_uncertain_values_total", "Values passed up with an Uncertain status.", devLabels...)
	mUATypeErrs   = desc("opcua_device_type_errors_total", "Values of another type than configured, left out.", devLabels...)
	mUADuplicates = desc("opcua_device_duplicate_values_total", "Values sent again with a source timestamp already passed up, left out.", devLabels...)
	mUAItemsRef   = desc("opcua_device_refused_items_total", "Monitored items or reads the server refused, by status name (other: a code without a name).", "adapter", "device", "status")
	mUAPolls      = desc("opcua_device_polls_total", "Reads of a device in poll mode.", devLabels...)
	mUAWrites     = desc("opcua_device_writes_total", "Successful writes.", devLabels...)
	mUAWriteErrs  = desc("opcua_device_write_errors_total", "Failed writes.", devLabels...)
	mUACalls      = desc("opcua_device_calls_total", "Successful method calls.", devLabels...)
	mUACallErrs   = desc("opcua_device_call_errors_total", "Failed method calls.", devLabels...)
	mSerOpen      = desc("serial_port_open", "1 while the serial port is open.", adLabels...)
	mSerLines     = desc("serial_lines_total", "Complete lines received, garbage included.", adLabels...)
	mSerGarbage   = desc("serial_garbage_lines_total", "Lines no pattern matched or without any parsable value.", adLabels...)
	mSerOverlong  = desc("serial_overlong_lines_total", "Lines longer than max_line, skipped.", adLabels...)
	mSerReadings  = desc("serial_readings_total", "Readings the uplink accepted.", adLabels...)
	mSerBad       = desc("serial_bad_values_total", "Values left out: missing or not parsable as their kind.", adLabels...)
	mSerRefused   = desc("serial_readings_refused_total", "Readings the uplink refused.", adLabels...)
	mSerReopens   = desc("serial_reopens_total", "Times the port was lost after being open.", adLabels...)
	mSerOpenFails = desc("serial_open_failures_total", "Failed attempts to open the port.", adLabels...)
	mSerWrites    = desc("serial_writes_total", "Frames and polls written.", adLabels...)
	mSimReadings  = desc("simulator_readings_total", "Simulated readings the uplink accepted.", adLabels...)
	mSimRefused   = desc("simulator_readings_refused_total", "Simulated readings the uplink refused.", adLabels...)

	mCommands   = desc("commands_total", "Commands carried out, by kind (method, desired, c2d) and result status.", "kind", "status")
	mCommandDur = desc("command_duration_seconds", "Time from a command's arrival to its result.", "kind")
)

// Collect emits every metric of one snapshot.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.snapshot()
	e := emitter{ch}
	e.gauge(mReady, b2f(st.Ready.Ready))
	kinds := map[string]int{NotStarted: 0, IdentityStalled: 0, DiskFull: 0, AdapterUnreachable: 0}
	for _, r := range st.Ready.Reasons {
		kinds[r.Kind]++
	}
	for k, n := range kinds {
		e.gauge(mNotReady, float64(n), k)
	}
	e.gauge(mStart, unix(&st.StartTime))
	tracked, untracked := c.points()
	e.gauge(mPointsT, float64(tracked))
	e.gauge(mPointsU, float64(untracked))
	for i := range st.Identities {
		identityMetrics(e, &st.Identities[i])
	}
	bufferMetrics(e, &st.Buffer)
	for i := range st.Adapters {
		adapterMetrics(e, &st.Adapters[i])
	}
	for _, n := range st.Commands.Counts {
		e.counter(mCommands, n.Count, n.Kind, n.Status)
	}
	for k, h := range st.Commands.Seconds {
		e.histogram(mCommandDur, h, k)
	}
}

func identityMetrics(e emitter, id *Identity) {
	l := id.ID
	e.gauge(mConnected, b2f(id.Connected), l)
	e.gauge(mQueued, float64(id.Queued), l)
	e.gauge(mQueuedB, float64(id.QueuedBytes), l)
	age := 0.0
	if id.OldestAgeSeconds != nil {
		age = *id.OldestAgeSeconds
	}
	e.gauge(mOldest, age, l)
	e.gauge(mInFlight, float64(id.InFlight), l)
	if id.LastAck != nil {
		e.gauge(mLastAck, unix(id.LastAck), l)
	}
	e.counter(mSent, id.Sent, l)
	e.counter(mResent, id.Resent, l)
	e.counter(mAcked, id.Acknowledged, l)
	e.counter(mUndeliv, id.Undeliverable, l)
	for r, n := range id.BufferDrops {
		e.counter(mIDDrops, n, l, r)
	}
	for r, n := range id.ReconnectsByReason {
		e.counter(mReconn, n, l, r)
	}
	e.counter(mRenewals, id.TokenRenewals, l)
	if id.TokenExpiry != nil {
		e.gauge(mExpiry, unix(id.TokenExpiry), l)
	}
	e.counter(mCmdRecv, id.CommandsReceived, l)
	e.counter(mCmdThr, id.CommandsThrottled, l)
	e.gauge(mErrActive, b2f(id.LastError != nil && id.LastError.Cleared == nil), l)
}

func bufferMetrics(e emitter, b *Buffer) {
	e.gauge(mBufRecords, float64(b.Records))
	e.gauge(mBufBytes, float64(b.StoredBytes))
	e.gauge(mBufMax, float64(b.MaxBytes))
	if b.DiskUsageBytes != nil {
		e.gauge(mBufDisk, float64(*b.DiskUsageBytes))
	}
	if b.DiskFreeBytes != nil {
		e.gauge(mBufFree, float64(*b.DiskFreeBytes))
	}
	e.gauge(mBufFull, b2f(b.DiskFull))
	e.counter(mBufApp, b.Appended)
	e.counter(mBufCommits, b.Commits)
	e.counter(mBufAppCom, b.AppendCommits)
	e.counter(mBufErrs, b.AppendErrors)
	for r, n := range b.Drops {
		e.counter(mBufDrops, n, r)
	}
	e.counter(mBufCompact, b.Compactions)
}

func adapterMetrics(e emitter, a *Adapter) {
	n := a.Name
	switch {
	case a.LAN != nil:
		s := a.LAN
		e.gauge(mLANClients, float64(s.Clients), n)
		e.counter(mLANConnects, s.Connects, n)
		e.counter(mLANAuth, s.AuthFailures, n)
		e.counter(mLANACL, s.ACLDenials, n)
		e.counter(mLANIn, s.PublishesReceived, n)
		e.counter(mLANStored, s.PublishesStored, n)
		for r, v := range s.PublishesRefused {
			e.counter(mLANRefused, v, n, r)
		}
		e.counter(mLANClosed, s.ClosedOnRefusal, n)
		e.counter(mLANConnErr, s.ConnectionErrors, n)
		e.counter(mLANSubDrops, s.SubscriberDrops, n)
		e.counter(mLANCommands, s.CommandsPublished, n)
	case a.Modbus != nil:
		s := a.Modbus
		e.gauge(mMBConnected, b2f(s.Connected), n)
		e.counter(mMBConnects, s.Connects, n)
		e.counter(mMBConnErrs, s.ConnectErrors, n)
		e.counter(mMBDisconn, s.Disconnects, n)
		for i := range s.Devices {
			d := &s.Devices[i]
			e.gauge(mMBUp, b2f(d.State == "up"), n, d.Name)
			e.counter(mMBPolls, d.Polls, n, d.Name)
			e.counter(mMBRequests, d.Requests, n, d.Name)
			e.counter(mMBReadings, d.Readings, n, d.Name)
			e.counter(mMBRefused, d.SubmitErrors, n, d.Name)
			e.counter(mMBDropped, d.Dropped, n, d.Name)
			e.counter(mMBWrites, d.Writes, n, d.Name)
			e.counter(mMBWriteErrs, d.WriteErrors, n, d.Name)
			for k, v := range d.Errors {
				e.counter(mMBErrors, v, n, d.Name, k)
			}
			e.counter(mMBTimeouts, d.Errors["timeout"], n, d.Name)
			for code, v := range d.Exceptions {
				e.counter(mMBExceptions, v, n, d.Name, code)
			}
			e.histogram(mMBLatency, d.Latency, n, d.Name)
		}
	case a.OPCUA != nil:
		s := a.OPCUA
		e.gauge(mUAConnected, b2f(s.Connected), n)
		e.counter(mUAConnects, s.Connects, n)
		e.counter(mUAConnErrs, s.ConnectErrors, n)
		e.counter(mUADisconn, s.Disconnects, n)
		e.gauge(mUAError, b2f(s.LastError != nil && s.LastError.Cleared == nil), n)
		e.gauge(mUAUntrusted, b2f(s.UntrustedCertificate != ""), n)
		for i := range s.Devices {
			d := &s.Devices[i]
			e.counter(mUAValues, d.Values, n, d.Name)
			e.counter(mUAReadings, d.Readings, n, d.Name)
			e.counter(mUARefused, d.SubmitErrors, n, d.Name)
			for k, v := range byStatusName(d.BadValues) {
				e.counter(mUABad, v, n, d.Name, k)
			}
			e.counter(mUAUncertain, d.Uncertain, n, d.Name)
			e.counter(mUATypeErrs, d.TypeErrors, n, d.Name)
			e.counter(mUADuplicates, d.Duplicates, n, d.Name)
			for k, v := range byStatusName(d.Refused) {
				e.counter(mUAItemsRef, v, n, d.Name, k)
			}
			e.counter(mUAPolls, d.Polls, n, d.Name)
			e.counter(mUAWrites, d.Writes, n, d.Name)
			e.counter(mUAWriteErrs, d.WriteErrors, n, d.Name)
			e.counter(mUACalls, d.Calls, n, d.Name)
			e.counter(mUACallErrs, d.CallErrors, n, d.Name)
		}
	case a.Serial != nil:
		s := a.Serial
		e.gauge(mSerOpen, b2f(s.Open), n)
		e.counter(mSerLines, s.Lines, n)
		e.counter(mSerGarbage, s.Garbage, n)
		e.counter(mSerOverlong, s.Overlong, n)
		e.counter(mSerReadings, s.Readings, n)
		e.counter(mSerBad, s.BadValues, n)
		e.counter(mSerRefused, s.Refused, n)
		e.counter(mSerReopens, s.Reopens, n)
		e.counter(mSerOpenFails, s.OpenFailures, n)
		e.counter(mSerWrites, s.Writes, n)
	case a.Simulator != nil:
		e.counter(mSimReadings, a.Simulator.Readings, n)
		e.counter(mSimRefused, a.Simulator.Refused, n)
	}
}

// byStatusName keeps the counts of OPC UA status names and adds those of
// codes without a name (given as hex, 0x80AB0000, by a server's whim) into
// "other", so the status label takes only the standard's names.
func byStatusName(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		if !statusName.MatchString(k) {
			k = "other"
		}
		out[k] += v
	}
	return out
}

var statusName = regexp.MustCompile(`^(Good|Uncertain|Bad)[A-Za-z0-9]*$`)

// newRegistry returns a registry with the gateway's collector and the Go
// runtime's and the process's standard metrics.
func newRegistry(c *collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
