// Package serial is a southbound adapter.
package serial
