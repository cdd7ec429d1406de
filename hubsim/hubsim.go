// Package hubsim is a local hub that speaks Azure IoT Hub's MQTT device
// protocol and a subset of its service REST API, for development, demos,
// tests and benchmarks.
package hubsim
