// Package northbound keeps one authenticated MQTT connection per identity to
// the hub, drains each identity's buffer stream over it in order, and hands
// commands from the hub to the downlink road.
package northbound
