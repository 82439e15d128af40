package schema

import (
	"encoding/json"
	"regexp"
)

// Ingress is a design's north-south traffic: hosts it owns, prefixes it was delegated on
// other designs' hosts, and TLS secrets it lets other namespaces use.
type Ingress struct {
	Hosts          map[string]VirtualHost `json:"hosts,omitempty"`
	Claims         []Claim                `json:"claims,omitempty"`
	TLSDelegations []TLSDelegation        `json:"tlsDelegations,omitempty"`
}

type VirtualHost struct {
	TLS       *TLSRef        `json:"tls,omitempty"`
	Routes    []IngressRoute `json:"routes"`
	CORS      *CORS          `json:"cors,omitempty"`
	RateLimit *RateLimit     `json:"rateLimit,omitempty"`
	JWT       *JWT           `json:"jwt,omitempty"`
	Access    *IPAccess      `json:"access,omitempty"`
	ExtAuth   *ExtAuth       `json:"extAuth,omitempty"`
	// Passthrough sends the host's TLS connections, unopened, to these backends.
	Passthrough *Passthrough `json:"passthrough,omitempty"`
	Delegate    []Delegation `json:"delegate,omitempty"`
}

// JWT is the token issuer a host requires.
type JWT struct {
	Issuer          string            `json:"issuer"`
	JWKSURI         string            `json:"jwksURI"`
	Audiences       []string          `json:"audiences,omitempty"`
	Forward         bool              `json:"forward,omitempty"`
	From            *TokenFrom        `json:"from,omitempty"`
	ClaimsToHeaders map[string]string `json:"claimsToHeaders,omitempty"`
}

// TokenFrom is where requests carry a token: a header with a value prefix, or a query
// parameter.
type TokenFrom struct {
	Header string `json:"header,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Query  string `json:"query,omitempty"`
}

// RateLimit is a local rate limit: Requests per Unit (second, minute, hour), with Burst more
// allowed at once; requests over it get 429.
type RateLimit struct {
	Requests int    `json:"requests"`
	Unit     string `json:"unit"`
	Burst    int    `json:"burst,omitempty"`
}

// CORS is how a host answers browsers' cross-origin requests.
type CORS struct {
	AllowOrigins     []string  `json:"allowOrigins"`
	AllowMethods     []string  `json:"allowMethods"`
	AllowHeaders     []string  `json:"allowHeaders,omitempty"`
	ExposeHeaders    []string  `json:"exposeHeaders,omitempty"`
	MaxAge           *Duration `json:"maxAge,omitempty"`
	AllowCredentials bool      `json:"allowCredentials"`
}

type TLSRef struct {
	Secret     string    `json:"secret"`
	Namespace  string    `json:"namespace,omitempty"`
	MinVersion string    `json:"minVersion,omitempty"`
	ClientCA   *ClientCA `json:"clientCA,omitempty"`
}

// ClientCA is the CA a host checks client certificates against.
type ClientCA struct {
	Secret   string `json:"secret"`
	Optional bool   `json:"optional,omitempty"`
}

type Delegation struct {
	Prefix    string `json:"prefix"`
	Namespace string `json:"namespace"`
}

type Claim struct {
	Host   string         `json:"host"`
	Prefix string         `json:"prefix"`
	Owner  string         `json:"owner"`
	Routes []IngressRoute `json:"routes"`
}

type TLSDelegation struct {
	Secret string   `json:"secret"`
	To     []string `json:"to"`
}

type IngressRoute struct {
	Prefix          string                 `json:"prefix"`
	Exact           string                 `json:"exact,omitempty"`
	Regex           string                 `json:"regex,omitempty"`
	GRPC            *GRPCMatch             `json:"grpc,omitempty"`
	Headers         map[string]HeaderMatch `json:"headers,omitempty"`
	Method          string                 `json:"method,omitempty"`
	Query           map[string]HeaderMatch `json:"query,omitempty"`
	Backends        []IngressBackend       `json:"backends,omitempty"`
	Respond         *Respond               `json:"respond,omitempty"`
	Redirect        *Redirect              `json:"redirect,omitempty"`
	Rewrite         *Rewrite               `json:"rewrite,omitempty"`
	Timeout         *Duration              `json:"timeout,omitempty"`
	IdleTimeout     *Duration              `json:"idleTimeout,omitempty"`
	Retries         *Retries               `json:"retries,omitempty"`
	HealthCheck     *HealthCheck           `json:"healthCheck,omitempty"`
	RequestHeaders  *HeaderPolicy          `json:"requestHeaders,omitempty"`
	ResponseHeaders *HeaderPolicy          `json:"responseHeaders,omitempty"`
	WebSockets      bool                   `json:"websockets,omitempty"`
	RateLimit       *RateLimit             `json:"rateLimit,omitempty"`
	// JWT is false for a route left open on a host that requires a token (nil: as the host).
	JWT    *bool     `json:"jwt,omitempty"`
	Access *IPAccess `json:"access,omitempty"`
	// ExtAuth is false for a route the host's authorization server does not check (nil: as
	// the host).
	ExtAuth *bool `json:"extAuth,omitempty"`
}

// ExtAuth is an external authorization server a host checks requests with.
type ExtAuth struct {
	Service  string    `json:"service,omitempty"`
	Port     int       `json:"port,omitempty"`
	Provider string    `json:"provider,omitempty"`
	TLS      bool      `json:"tls,omitempty"`
	FailOpen bool      `json:"failOpen,omitempty"`
	Timeout  *Duration `json:"timeout,omitempty"`
}

// IPAccess admits (Allow) or refuses (Deny) clients by address; Source is "peer" or
// "forwarded".
type IPAccess struct {
	Allow  []string `json:"allow,omitempty"`
	Deny   []string `json:"deny,omitempty"`
	Source string   `json:"source"`
}

type IngressBackend struct {
	Service  string    `json:"service,omitempty"`
	Version  string    `json:"version,omitempty"`
	External *External `json:"external,omitempty"`
	Weight   int       `json:"weight"`
}

type External struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	TLS  bool   `json:"tls"`
}

type Redirect struct {
	Scheme string `json:"scheme,omitempty"`
	Host   string `json:"host,omitempty"`
	Port   int    `json:"port,omitempty"`
	Path   string `json:"path,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Status int    `json:"status"`
}

// Rewrite changes a request on its way upstream: Prefix replaces the path prefix the route
// matched, Path the whole path, Regex what a regular expression matches in it; Host replaces
// the Host header.
type Rewrite struct {
	Prefix string        `json:"prefix,omitempty"`
	Path   string        `json:"path,omitempty"`
	Regex  *RegexRewrite `json:"regex,omitempty"`
	Host   string        `json:"host,omitempty"`
}

// RegexRewrite replaces what Match (RE2) matches in the path with Substitution (\1 for its
// first group).
type RegexRewrite struct {
	Match        string `json:"match"`
	Substitution string `json:"substitution"`
}

type HeaderPolicy struct {
	Set    map[string]string `json:"set,omitempty"`
	Remove []string          `json:"remove,omitempty"`
}

// HealthCheck is an active HTTP check of a route's endpoints.
type HealthCheck struct {
	Path               string   `json:"path"`
	Interval           Duration `json:"interval"`
	Timeout            Duration `json:"timeout"`
	UnhealthyThreshold int      `json:"unhealthyThreshold"`
	HealthyThreshold   int      `json:"healthyThreshold"`
	Host               string   `json:"host,omitempty"`
}

// Respond is an answer the edge gives itself.
type Respond struct {
	Status int    `json:"status"`
	Body   string `json:"body,omitempty"`
}

// Upstream reports whether the route sends its requests upstream (neither redirects nor
// answers itself).
func (r IngressRoute) Upstream() bool { return r.Redirect == nil && r.Respond == nil }

// HeaderMatch is how an edge route matches one header: exactly one of its fields is set.
type HeaderMatch struct {
	Exact   *string `json:"exact,omitempty"`
	Prefix  string  `json:"prefix,omitempty"`
	Regex   string  `json:"regex,omitempty"`
	Present bool    `json:"present,omitempty"`
	Absent  bool    `json:"absent,omitempty"`
}

// UnmarshalJSON reads a header match written as a plain string as an exact value.
func (m *HeaderMatch) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		m.Exact = &s
		return nil
	}
	type plain HeaderMatch
	return json.Unmarshal(b, (*plain)(m))
}

// ExactHeader is a header match on an exact value.
func ExactHeader(v string) HeaderMatch { return HeaderMatch{Exact: &v} }

// String says the match in the design's words, for keys and messages.
func (m HeaderMatch) String() string {
	switch {
	case m.Exact != nil:
		return *m.Exact
	case m.Prefix != "":
		return "prefix:" + m.Prefix
	case m.Regex != "":
		return "regex:" + m.Regex
	case m.Present:
		return "present"
	case m.Absent:
		return "absent"
	}
	return ""
}

// AsRegex is the match as a regular expression over the whole value, for providers without a
// prefix or presence match; ok is false for absent, which no regex says.
func (m HeaderMatch) AsRegex() (string, bool) {
	switch {
	case m.Exact != nil:
		return "^" + regexp.QuoteMeta(*m.Exact) + "$", true
	case m.Prefix != "":
		return regexp.QuoteMeta(m.Prefix) + ".*", true
	case m.Regex != "":
		return m.Regex, true
	case m.Present:
		return ".*", true
	}
	return "", false
}

// GRPCMatch matches gRPC calls to a service, or to one of its methods.
type GRPCMatch struct {
	Service string `json:"service"`
	Method  string `json:"method,omitempty"`
}

// PathKind is how a route matches its path.
type PathKind int

const (
	PathPrefix PathKind = iota
	PathExact
	PathRegex
)

// PathMatch is how the route matches the path, and what: an exact path, a regular expression,
// or a prefix (MatchPrefix).
func (r IngressRoute) PathMatch() (PathKind, string) {
	switch {
	case r.Exact != "":
		return PathExact, r.Exact
	case r.Regex != "":
		return PathRegex, r.Regex
	}
	return PathPrefix, r.MatchPrefix()
}

func (r IngressRoute) kindOf() PathKind {
	k, _ := r.PathMatch()
	return k
}

// MatchText says what the route matches in the design's words, for keys and messages.
func (r IngressRoute) MatchText() string {
	switch k, p := r.PathMatch(); k {
	case PathExact:
		return "exactly " + p
	case PathRegex:
		return "regex " + p
	default:
		return p
	}
}

// MatchPrefix is the path prefix the route matches: a gRPC service's or method's path, or
// Prefix.
func (r IngressRoute) MatchPrefix() string {
	if g := r.GRPC; g != nil {
		if g.Method != "" {
			return "/" + g.Service + "/" + g.Method
		}
		return "/" + g.Service
	}
	return r.Prefix
}

// Passthrough is where a host's TLS connections go, unopened.
type Passthrough struct {
	Backends []IngressBackend `json:"backends"`
}
