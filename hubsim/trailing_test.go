package hubsim

import "testing"

// A JSON body with a stray closing bracket after the value is refused, not
// read as the value before it.
func TestTrailingBracketRefused(t *testing.T) {
	for _, b := range []string{`{}}`, `{"a":1}]`, `{} {}`} {
		if _, err := decodeObject([]byte(b)); err == nil {
			t.Errorf("decodeObject(%q) accepted", b)
		}
		if _, err := parseRegisterBody([]byte(`{"registrationId":"d1"}` + b[len(b)-1:])); err == nil {
			t.Errorf("parseRegisterBody with trailing %q accepted", b[len(b)-1:])
		}
	}
	if _, err := decodeObject([]byte(" {\"a\":1} \n")); err != nil {
		t.Errorf("white space around an object: %v", err)
	}
}
