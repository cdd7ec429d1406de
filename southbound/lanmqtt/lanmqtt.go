// Package lanmqtt is a southbound adapter.
package lanmqtt
