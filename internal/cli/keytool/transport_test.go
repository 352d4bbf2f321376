package keytool

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/internal/cli/apiclient"
)

// TestClearComponentsNotOverPlainHTTP: keys import (components) and keys
// export-component refuse plain http to a host other than this machine, before
// reading a component or calling the switch, saying to use https or run on the
// switch's host; plain http to 127.0.0.1 or localhost and https to another host
// reach the switch. Before, the clear component went to whatever --admin named.
func TestClearComponentsNotOverPlainHTTP(t *testing.T) {
	var mu sync.Mutex
	var got []string // the paths the switch was asked for
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.Path)
		mu.Unlock()
		http.Error(w, `{"error":"teapot"}`, http.StatusTeapot)
	})
	plain, tls := httptest.NewServer(h), httptest.NewTLSServer(h)
	defer plain.Close()
	defer tls.Close()
	// Every name dials the test server: the URL's host is what the rule looks at.
	via := func(srv *httptest.Server) *http.Client {
		hc := srv.Client()
		tr := hc.Transport.(*http.Transport).Clone()
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
		}
		return &http.Client{Transport: tr}
	}
	_, port, _ := net.SplitHostPort(plain.Listener.Addr().String())
	_, tlsPort, _ := net.SplitHostPort(tls.Listener.Addr().String())
	comp := withKCV("0123456789ABCDEF0123456789ABCDEF") + "\n"
	run := func(base string, hc *http.Client, args ...string) (int, string, []string) {
		mu.Lock()
		got = nil
		mu.Unlock()
		var out, errb bytes.Buffer
		c := &apiclient.Client{BaseURL: base, Token: "tok", HTTP: hc}
		code := RunWithInput(context.Background(), args, c, nil, strings.NewReader(comp), &out, &errb)
		mu.Lock()
		defer mu.Unlock()
		return code, errb.String(), append([]string(nil), got...)
	}
	importArgs := []string{"import", "--type", "ZMK", "--id", "x.ZMK", "--enter", "1"}
	exportArgs := []string{"export-component", "--id", "x.ZMK"}
	for _, host := range []string{"switch.example", "10.1.2.3", "[fd00::1]", "127.0.0.1.example"} {
		base := "http://" + host + ":" + port
		for _, args := range [][]string{importArgs, exportArgs} {
			code, errs, calls := run(base, via(plain), args...)
			if code != ExitError || len(calls) != 0 || !strings.Contains(errs, base+" over plain http") ||
				!strings.Contains(errs, "give an https URL") || !strings.Contains(errs, "run this command on the switch's host") {
				t.Errorf("%s %s: exit %d, calls %v, stderr %q; want exit 1, no call, a refusal saying to use https", args[0], base, code, calls, errs)
			}
			if strings.Contains(errs, "component 1 of 1") {
				t.Errorf("%s %s: asked for a component before refusing: %q", args[0], base, errs)
			}
		}
	}
	for _, c := range []struct {
		base string
		hc   *http.Client
	}{
		{plain.URL, nil},
		{"http://localhost:" + port, via(plain)},
		{"http://[::1]:" + port, via(plain)},
		{"https://switch.example.com:" + tlsPort, via(tls)}, // httptest's certificate names *.example.com
	} {
		for _, args := range [][]string{importArgs, exportArgs} {
			if code, errs, calls := run(c.base, c.hc, args...); len(calls) != 1 || !strings.Contains(errs, "418") {
				t.Errorf("%s %s: exit %d, calls %v, stderr %q; want the call made (418 from the test switch)", args[0], c.base, code, calls, errs)
			}
		}
	}
}
