package sources

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// transportHelperRE matches git's "<helper>::<address>" form (ext::, fd::, ...).
var transportHelperRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*::`)

// URLPolicy says which repository addresses meshcd may contact. The zero value is the safe
// default: https and ssh only, no link-local or cloud metadata addresses.
type URLPolicy struct {
	// AllowHTTP permits plain http (for example a Git server on the same host).
	AllowHTTP bool
	// AllowFile permits file:// repositories.
	AllowFile bool
	// AllowLinkLocal permits 169.254.0.0/16 and fe80::/10, where cloud metadata services live.
	AllowLinkLocal bool
}

// Check refuses an address the policy does not allow, naming why; the address is redacted.
func (p URLPolicy) Check(raw string) error {
	shown := redact(raw)
	switch {
	case strings.HasPrefix(raw, "-"):
		return fmt.Errorf("repository %q starts with '-', which git would read as an option", shown)
	case transportHelperRE.MatchString(raw):
		return fmt.Errorf("repository %q uses a transport helper (ext::, fd::); only https and ssh are allowed", shown)
	}
	host := ""
	if scheme, _, ok := strings.Cut(raw, "://"); ok {
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("repository %q is not a valid URL", shown)
		}
		switch scheme {
		case "https", "ssh":
		case "http":
			if !p.AllowHTTP {
				return fmt.Errorf("repository %q uses plain http; allow it in the config or use https", shown)
			}
		case "file":
			if !p.AllowFile {
				return fmt.Errorf("repository %q is a local path; allow file:// in the config", shown)
			}
			return nil
		default:
			return fmt.Errorf("repository %q uses %s://; only https and ssh are allowed", shown, scheme)
		}
		host = u.Hostname()
	} else if at := strings.Index(raw, "@"); at >= 0 && strings.Contains(raw[at:], ":") {
		// scp-like ssh: git@host:org/repo.git
		host = strings.SplitN(raw[at+1:], ":", 2)[0]
	} else {
		if !p.AllowFile {
			return fmt.Errorf("repository %q is a local path; allow file:// in the config", shown)
		}
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && (ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast()) && !p.AllowLinkLocal {
		return fmt.Errorf("repository %q is on a link-local address (cloud metadata lives there); refused", shown)
	}
	if host == "metadata.google.internal" && !p.AllowLinkLocal {
		return fmt.Errorf("repository %q is a cloud metadata address; refused", shown)
	}
	return nil
}
