package iothub

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgegw/edgegw"
)

type props = []edgegw.Property

func TestParseBag(t *testing.T) {
	for _, tt := range []struct {
		bag  string
		want props
	}{
		{"", nil},
		{"&&", props{}},
		{"a=b", props{{Key: "a", Value: "b"}}},
		// What the Node SDK sends (iothub-mqtt reference §2).
		{"%24.mid=mid-1&%24.cid=cid%201&%24.ct=application%2Fjson&%24.ce=utf-8&alert=yes%26no&%24.sub=sub1",
			props{{Key: "$.mid", Value: "mid-1"}, {Key: "$.cid", Value: "cid 1"}, {Key: "$.ct", Value: "application/json"},
				{Key: "$.ce", Value: "utf-8"}, {Key: "alert", Value: "yes&no"}, {Key: "$.sub", Value: "sub1"}}},
		// A null (no "="), an empty value, a literal plus, "=" in a value,
		// an unescaped "$", duplicates kept in order.
		{"nullprop&empty=&a+b=c+d&k=v=w&$.mid=1&$.mid=2",
			props{{Key: "nullprop"}, {Key: "empty"}, {Key: "a+b", Value: "c+d"}, {Key: "k", Value: "v=w"},
				{Key: "$.mid", Value: "1"}, {Key: "$.mid", Value: "2"}}},
		// Not checked to be UTF-8 (IoT Hub leaves such escapes alone).
		{"k=%E2%82%AC&x=%ff", props{{Key: "k", Value: "€"}, {Key: "x", Value: "\xff"}}},
	} {
		got, err := ParseBag(tt.bag)
		if err != nil || !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("ParseBag(%q) = %q, %v; want %q", tt.bag, got, err, tt.want)
		}
	}
	for _, bad := range []string{"a=%zz", "%g=1", "=x", "a&=", "%", "a=%2", "%zz=1"} {
		if _, err := ParseBag(bad); !errors.Is(err, ErrBadBag) {
			t.Errorf("ParseBag(%q): err %v, want ErrBadBag", bad, err)
		}
	}
	if _, err := ParseBag("%zz=1"); err == nil || !strings.Contains(err.Error(), "invalid URL escape") {
		t.Errorf("error does not say why: %v", err)
	}
}

func TestWriteBag(t *testing.T) {
	got := EncodeBag(props{{Key: "$.mid", Value: "m 1"}, {Key: "alert", Value: "yes&no=maybe/so"}, {Key: "$x", Value: ""},
		{Key: "é(!)", Value: "a+b~"}})
	want := "%24.mid=m%201&alert=yes%26no%3Dmaybe%2Fso&%24x=&%C3%A9%28%21%29=a%2Bb~"
	if got != want {
		t.Errorf("EncodeBag\n got %s\nwant %s", got, want)
	}
	if EncodeBag(nil) != "" {
		t.Error("empty bag not empty")
	}
	if got := string(AppendBag([]byte("x?"), props{{Key: "$.mid", Value: "m 1"}, {Key: "a", Value: "b/c"}})); got != "x?%24.mid=m%201&a=b%2Fc" {
		t.Errorf("AppendBag: %s", got)
	}
}

// checkAppendForms checks that the append and length forms of a message's
// bag agree with WriteMessageBag.
func checkAppendForms(t *testing.T, m *edgegw.Message) {
	t.Helper()
	var b strings.Builder
	WriteMessageBag(&b, m)
	if got := string(AppendMessageBag([]byte("pre/"), m)); got != "pre/"+b.String() {
		t.Errorf("AppendMessageBag %q, want %q", got, "pre/"+b.String())
	}
	if n := MessageBagLen(m); n != b.Len() {
		t.Errorf("MessageBagLen %d, want %d (%q)", n, b.Len(), b.String())
	}
}

func TestMessageBag(t *testing.T) {
	m := &edgegw.Message{MessageID: "m 1", ContentType: "application/json", ContentEncoding: "utf-8",
		Created:    time.Date(2021, 4, 21, 11, 30, 16, 0, time.UTC),
		Properties: props{{Key: "alert", Value: "yes&no"}, {Key: "$.sub", Value: "s"}}}
	var b strings.Builder
	WriteMessageBag(&b, m)
	want := "%24.mid=m%201&%24.ct=application%2Fjson&%24.ce=utf-8&alert=yes%26no&%24.sub=s"
	if b.String() != want {
		t.Errorf("WriteMessageBag\n got %s\nwant %s", b.String(), want)
	}
	for _, tt := range []struct {
		m    edgegw.Message
		want string
	}{
		{edgegw.Message{}, ""},
		{edgegw.Message{CorrelationID: "c"}, "%24.cid=c"},
		{edgegw.Message{Properties: props{{Key: "k", Value: "v"}}}, "k=v"},
	} {
		var b strings.Builder
		WriteMessageBag(&b, &tt.m)
		if b.String() != tt.want {
			t.Errorf("%+v: %q, want %q", tt.m, b.String(), tt.want)
		}
		checkAppendForms(t, &tt.m)
	}
	checkAppendForms(t, m)

	// The Node SDK's bag, plus $.ctime, back into a message.
	p, err := ParseBag("%24.mid=mid-1&%24.cid=cid%201&%24.ct=application%2Fjson&%24.ce=utf-8&alert=yes%26no&%24.sub=sub1" +
		"&%24.ctime=2021-04-21T13%3A30%3A16%2B02%3A00&nullprop&empty=&a+b=c+d&%24.ctime=yesterday")
	if err != nil {
		t.Fatal(err)
	}
	var got edgegw.Message
	ApplyBag(&got, p)
	if got.MessageID != "mid-1" || got.CorrelationID != "cid 1" || got.ContentType != "application/json" ||
		got.ContentEncoding != "utf-8" || got.Created != time.Date(2021, 4, 21, 11, 30, 16, 0, time.UTC) {
		t.Errorf("system properties: %+v", got)
	}
	wantProps := props{{Key: "alert", Value: "yes&no"}, {Key: "$.sub", Value: "sub1"}, {Key: "nullprop"}, {Key: "empty"},
		{Key: "a+b", Value: "c+d"}, {Key: "$.ctime", Value: "yesterday"}}
	if !slices.Equal(got.Properties, wantProps) {
		t.Errorf("properties %q, want %q", got.Properties, wantProps)
	}
	// Properties already there stay first.
	m2 := edgegw.Message{Properties: props{{Key: "k", Value: "v"}}}
	ApplyBag(&m2, props{{Key: "$.mid", Value: "x"}, {Key: "a", Value: "b"}})
	if m2.MessageID != "x" || !slices.Equal(m2.Properties, props{{Key: "k", Value: "v"}, {Key: "a", Value: "b"}}) {
		t.Errorf("appended: %+v", m2)
	}
	if !IsSystem("$.sub") || IsSystem("$version") || IsSystem("a$.") {
		t.Error("IsSystem")
	}
}

func TestEscapeComponent(t *testing.T) {
	// encodeURIComponent plus !'()*, upper-case hex, bytes of UTF-8.
	for _, tt := range []struct{ in, want string }{
		{"", ""}, {"AZaz09-_.~", "AZaz09-_.~"}, {"hub/devices/d 1", "hub%2Fdevices%2Fd%201"}, {"!'()*", "%21%27%28%29%2A"},
		{"+=&%$#?;:@,", "%2B%3D%26%25%24%23%3F%3B%3A%40%2C"}, {"é€\x00\xff", "%C3%A9%E2%82%AC%00%FF"},
		{"w1+Vkl0T84nkNyE+AF3j=", "w1%2BVkl0T84nkNyE%2BAF3j%3D"},
	} {
		if got := EscapeComponent(tt.in); got != tt.want {
			t.Errorf("EscapeComponent(%q) = %q, want %q", tt.in, got, tt.want)
		}
		checkEscapeForms(t, tt.in, tt.want)
	}
}

// checkEscapeForms checks that the append, builder and length forms of
// EscapeComponent give want for s.
func checkEscapeForms(t *testing.T, s, want string) {
	t.Helper()
	if got := string(AppendEscaped([]byte("x"), s)); got != "x"+want {
		t.Errorf("AppendEscaped(%q) = %q, want %q", s, got, "x"+want)
	}
	var b strings.Builder
	writeEscaped(&b, s)
	if b.String() != want {
		t.Errorf("writeEscaped(%q) = %q, want %q", s, b.String(), want)
	}
	if n := EscapedLen(s); n != len(want) {
		t.Errorf("EscapedLen(%q) = %d, want %d", s, n, len(want))
	}
}

func FuzzEscapeComponent(f *testing.F) {
	f.Add("myhub.azure-devices.net/devices/dev 1")
	f.Add("$.mid=é&x/y+z%")
	f.Fuzz(func(t *testing.T, s string) {
		e := EscapeComponent(s)
		checkEscapeForms(t, s, e)
		for i := 0; i < len(e); i++ {
			if c := e[i]; c != '%' && !unreserved(c) {
				t.Fatalf("%q left in %q", c, e)
			}
		}
		d, err := url.PathUnescape(e)
		if err != nil || d != s {
			t.Fatalf("round trip %q -> %q -> %q, %v", s, e, d, err)
		}
	})
}

// sdkBag encodes props as the Node SDK does (querystring.stringify for
// system properties, encodeURIComponent for the others: both leave !'()*
// alone), so what the SDK sends decodes to what it meant.
func sdkBag(p props) string {
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	items := make([]string, len(p))
	for i, kv := range p {
		items[i] = esc(kv.Key) + "=" + esc(kv.Value)
	}
	return strings.Join(items, "&")
}

// FuzzPropertyBag: ParseBag never panics and its errors wrap ErrBadBag;
// whatever it decodes survives a round trip through EncodeBag and through
// the SDK's encoding, as properties and as a message, also inside a
// telemetry topic, and topics cut at a random point never panic
// ParseEventsTopic. Any two properties with names round-trip too.
func FuzzPropertyBag(f *testing.F) {
	for _, s := range []string{
		"", "/", "a=b", "a", "&&", "&&=&a==b", "%", "a=%2", "a=%zz", "k=%E2%82%AC", "nul&empty=&x=%zz",
		"%24.mid=1&%24.ct=application%2Fjson", "%24.ctime=2021-04-21T11%3A30%3A16Z", "%24.cid=x%26y&k=v%3Dw",
		"$.mid=1&$.mid=2", "a+b=c%20d/", "%24.mid=mid-1&%24.cid=cid%201&%24.ct=application%2Fjson&alert=yes%26no&%24.sub=sub1",
	} {
		f.Add(s, uint8(0), "$.mid", "a b&c=d")
	}
	f.Add("", uint8(7), "k%", "")
	f.Fuzz(func(t *testing.T, bag string, split uint8, k, v string) {
		if k != "" {
			two := props{{Key: k, Value: v}, {Key: v + "x", Value: k}}
			if got, err := ParseBag(EncodeBag(two)); err != nil || !slices.Equal(got, two) {
				t.Fatalf("%q -> %q -> %q, %v", two, EncodeBag(two), got, err)
			}
		}
		p, err := ParseBag(bag)
		if err != nil {
			if !errors.Is(err, ErrBadBag) {
				t.Fatalf("error does not wrap ErrBadBag: %v", err)
			}
			return
		}
		enc := EncodeBag(p)
		for _, again := range []string{enc, sdkBag(p)} {
			if got, err := ParseBag(again); err != nil || !slices.Equal(got, p) {
				t.Fatalf("round trip of %q via %q: %q, %v; want %q", bag, again, got, err, p)
			}
		}

		var m1, m2 edgegw.Message
		ApplyBag(&m1, p)
		checkAppendForms(t, &m1)
		var b strings.Builder
		WriteMessageBag(&b, &m1)
		p2, err := ParseBag(b.String())
		if err != nil {
			t.Fatalf("message bag %q: %v", b.String(), err)
		}
		ApplyBag(&m2, p2)
		if m1.MessageID != m2.MessageID || m1.CorrelationID != m2.CorrelationID || m1.ContentType != m2.ContentType ||
			m1.ContentEncoding != m2.ContentEncoding || !slices.Equal(m1.Properties, m2.Properties) {
			t.Fatalf("message round trip of %q via %q:\n%+v\n%+v", bag, b.String(), m1, m2)
		}

		topic := "devices/d1/messages/events/" + enc
		if id, got, ok := ParseEventsTopic(topic); !ok || id != "d1" || got != enc {
			t.Fatalf("topic %q parsed as (%q, %q, %v)", topic, id, got, ok)
		}
		_, _, _ = ParseEventsTopic(topic[:int(split)%(len(topic)+1)])
	})
}
