// Package simulator is a southbound adapter.
package simulator
