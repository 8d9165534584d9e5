package load

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// target is where a run sends: always a loopback address, dialled by IP so
// that no resolver can point a load test at another machine.
type target struct {
	dial string // IP:port that is dialled
	host string // the Host header, as the user wrote it
}

// parseTarget accepts "http://HOST:PORT" or "HOST:PORT" where HOST is
// localhost or a loopback IP (127.0.0.0/8, ::1). Load tests are meant for
// this machine only; anything else is refused.
func parseTarget(raw string) (target, error) {
	s := raw
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return target{}, fmt.Errorf("target %q: %w", raw, err)
	}
	if u.Scheme != "http" {
		return target{}, fmt.Errorf("target %q: only http is supported", raw)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return target{}, fmt.Errorf("target %q: give only scheme, host and port", raw)
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	ip, err := loopbackIP(u.Hostname())
	if err != nil {
		return target{}, fmt.Errorf("target %q: %w", raw, err)
	}
	return target{dial: net.JoinHostPort(ip.String(), port), host: u.Host}, nil
}

// loopbackIP resolves host without DNS: "localhost" is 127.0.0.1, and an IP
// must be a loopback one.
func loopbackIP(host string) (netip.Addr, error) {
	if strings.EqualFold(host, "localhost") {
		return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("host %q is not localhost or a loopback IP: load goes to this machine only", host)
	}
	if !ip.Unmap().IsLoopback() || ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("host %s is not a loopback address: load goes to this machine only", host)
	}
	return ip.Unmap(), nil
}
