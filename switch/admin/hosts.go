package admin

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// AllowedHosts is the list of names the admin address answers to
// (admin.allowed_hosts), against DNS rebinding: a web page whose own host name an
// attacker points at the admin address is same-origin to the browser, so the
// console's cross-origin check would let its login posts through. Its requests
// name the attacker's host in Host; CheckHost refuses them.
//
// An entry is a host name, which allows it on any port, or host:port, which
// allows it on that port only. A Host that is an IP address literal (127.0.0.1,
// [::1]:8080, any address, any port) is always allowed: rebinding needs a name
// the attacker controls, and a page whose origin is an IP address is served by
// whoever holds that address. The zero value (no entries) allows every Host.
type AllowedHosts struct {
	names     map[string]bool // host names allowed on any port
	hostPorts map[string]bool // "name:port" allowed on that port only
	list      string          // the entries, for the refusal's message
}

// ParseAllowedHost checks one entry of admin.allowed_hosts and returns it
// normalised (lower case, no trailing dot): a host name (letters, digits and
// hyphens in dot-separated labels) with an optional :port (1 to 65535). An IP
// address is refused: IP literals are always allowed, so listing one would only
// suggest that the others are not.
func ParseAllowedHost(entry string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(entry))
	if e == "" {
		return "", errors.New("empty entry: want a host name or host:port")
	}
	if strings.ContainsAny(e, "/@?# ") {
		return "", fmt.Errorf("%q is not a host name or host:port (no scheme, path or spaces)", entry)
	}
	host, port := e, ""
	if strings.HasPrefix(e, "[") || strings.Count(e, ":") > 1 {
		return "", fmt.Errorf("%q is an IP address: IP literals are always allowed (DNS rebinding needs a name); list host names only", entry)
	}
	if h, p, err := net.SplitHostPort(e); err == nil {
		host, port = h, p
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return "", fmt.Errorf("%q: port %q is not 1 to 65535", entry, p)
		}
	} else if strings.Contains(e, ":") {
		return "", fmt.Errorf("%q is not a host name or host:port: %v", entry, err)
	}
	host = strings.TrimSuffix(host, ".")
	if _, err := netip.ParseAddr(host); err == nil {
		return "", fmt.Errorf("%q is an IP address: IP literals are always allowed (DNS rebinding needs a name); list host names only", entry)
	}
	if err := checkHostName(host); err != nil {
		return "", fmt.Errorf("%q: %v", entry, err)
	}
	if port != "" {
		return host + ":" + port, nil
	}
	return host, nil
}

// checkHostName reports whether name (lower case) is a DNS host name: labels of
// 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen, at
// most 253 characters in all.
func checkHostName(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("host name of %d characters (want 1 to 253)", len(name))
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("label %q: want 1 to 63 characters between dots", label)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with a hyphen", label)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("label %q: %q is not a letter, digit or hyphen (no wildcards)", label, c)
			}
		}
	}
	return nil
}

// ParseAllowedHosts parses admin.allowed_hosts (ParseAllowedHost for each entry).
func ParseAllowedHosts(entries []string) (AllowedHosts, error) {
	a := AllowedHosts{names: map[string]bool{}, hostPorts: map[string]bool{}}
	var list []string
	for i, e := range entries {
		n, err := ParseAllowedHost(e)
		if err != nil {
			return AllowedHosts{}, fmt.Errorf("entry %d: %w", i, err)
		}
		if strings.Contains(n, ":") {
			a.hostPorts[n] = true
		} else {
			a.names[n] = true
		}
		list = append(list, n)
	}
	a.list = strings.Join(list, ", ")
	return a, nil
}

// Empty reports whether a has no entries (every Host is allowed).
func (a AllowedHosts) Empty() bool { return len(a.names) == 0 && len(a.hostPorts) == 0 }

// Allows reports whether a request whose Host header (http.Request.Host) is host
// may be served: a has no entries, host is an IP literal, or its name (on any
// port) or name:port is listed. Case and one trailing dot are ignored; an empty
// Host (an HTTP/1.0 request without one) is refused when a has entries.
func (a AllowedHosts) Allows(host string) bool {
	if a.Empty() {
		return true
	}
	h := strings.ToLower(host)
	name, port := h, ""
	if n, p, err := net.SplitHostPort(h); err == nil {
		name, port = n, p
	}
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return false
	}
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		return true
	}
	return a.names[name] || (port != "" && a.hostPorts[name+":"+port])
}

// HostRefusal is a request CheckHost refused: its Host, path and the client's
// addresses, for the caller's log.
type HostRefusal struct {
	Host   string
	Method string
	Path   string
	Peer   string // the connection's address, ip:port
}

// CheckHost wraps h so that a request whose Host a does not allow is answered
// 421 Misdirected Request (RFC 9110 15.5.20: this server does not answer for that
// name) with a JSON error naming the Host and the allowed names, before h sees it;
// refused, if not nil, is told of each (it must not block). With a empty, h is
// returned as it is.
func CheckHost(h http.Handler, a AllowedHosts, refused func(HostRefusal)) http.Handler {
	if a.Empty() {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.Allows(r.Host) {
			h.ServeHTTP(w, r)
			return
		}
		if refused != nil {
			refused(HostRefusal{Host: r.Host, Method: r.Method, Path: r.URL.Path, Peer: r.RemoteAddr})
		}
		// The connection served a name it should not: do not keep it for the next.
		w.Header().Set("Connection", "close")
		WriteError(w, http.StatusMisdirectedRequest, fmt.Errorf("host %q is not one this server answers to (admin.allowed_hosts: %s, or an IP address); use one of those names", r.Host, a.list))
	})
}
