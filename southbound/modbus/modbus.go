// Package modbus is a southbound adapter.
package modbus
