package lanmqtt

import (
	"slices"
	"sync/atomic"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegw/edgegw/internal/testpeer"
)

// TestApplyUsers: while the broker runs, a user whose entry did not change
// keeps its connection; a changed user is disconnected and connects again
// with its new password only; a removed user is disconnected and refused;
// an added user connects; an invalid list changes nothing.
func TestApplyUsers(t *testing.T) {
	a := start(t, baseConfig(), &testpeer.Uplink{})
	url := brokerURL(a)
	lost := map[string]*atomic.Int32{}
	conn := func(user, pass string) {
		n := &atomic.Int32{}
		lost[user] = n
		connect(t, pahoOpts(url, user, user, pass).SetConnectionLostHandler(func(paho.Client, error) { n.Add(1) }))
	}
	conn("dev1", "pw1")
	conn("dev2", "pw2")
	conn("sensor", "pw3")

	bad := slices.Clone(baseConfig().Users)
	bad[0].Password = ""
	if _, _, _, err := a.ApplyUsers(bad); err == nil {
		t.Fatal("a user without credentials was accepted")
	}

	users := slices.Clone(baseConfig().Users)
	users[1].Password = "new-pw2"                                                             // dev2 changed
	users = slices.Delete(users, 2, 3)                                                        // sensor removed
	users = append(users, User{Username: "extra", Password: "pw5", Publish: []string{"x/#"}}) // added
	added, changed, removed, err := a.ApplyUsers(users)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(added, []string{"extra"}) || !slices.Equal(changed, []string{"dev2"}) || !slices.Equal(removed, []string{"sensor"}) {
		t.Errorf("added %v changed %v removed %v", added, changed, removed)
	}
	eventually(t, "the changed and removed users' connections to close", func() bool {
		return lost["dev2"].Load() == 1 && lost["sensor"].Load() == 1
	})
	if lost["dev1"].Load() != 0 {
		t.Error("the unchanged user lost its connection")
	}
	if err := connectErr(t, pahoOpts(url, "dev2", "dev2", "pw2")); err == nil {
		t.Error("the changed user connected with its old password")
	}
	if err := connectErr(t, pahoOpts(url, "dev2", "dev2", "new-pw2")); err != nil {
		t.Errorf("the changed user with its new password: %v", err)
	}
	if err := connectErr(t, pahoOpts(url, "sensor", "sensor", "pw3")); err == nil {
		t.Error("the removed user connected")
	}
	if err := connectErr(t, pahoOpts(url, "extra", "extra", "pw5")); err != nil {
		t.Errorf("the added user: %v", err)
	}
}
