package schema

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"cuelang.org/go/cue"
)

// Mesh is the service mesh a cluster runs, which decides what a design renders to there.
type Mesh string

const (
	MeshIstio      Mesh = "istio"
	MeshLinkerd    Mesh = "linkerd"
	MeshGatewayAPI Mesh = "gateway-api"
)

// Fleet is every cluster a fleet repo describes.
type Fleet struct {
	Clusters []Cluster
}

// Cluster is one cluster from clusters/*.cue: where a design may apply, never how to reach
// it (credentials live in the daemon's config).
type Cluster struct {
	Name              string            `json:"-"`
	Labels            map[string]string `json:"labels"`
	Mesh              Mesh              `json:"mesh"`
	Ingress           string            `json:"ingress,omitempty"`
	KubernetesVersion string            `json:"kubernetesVersion,omitempty"`
	GatewayAPI        GatewayAPI        `json:"gatewayAPI"`
	Contour           ContourConfig     `json:"contour"`
	Istio             IstioConfig       `json:"istio"`
	Values            map[string]any    `json:"values"`
	// File is where the cluster is defined, relative to the repo root.
	File string `json:"-"`
}

// GatewayAPI is the Gateway API release and channel a cluster serves and its controllers read.
type GatewayAPI struct {
	Version string `json:"version,omitempty"`
	Channel string `json:"channel,omitempty"`
	// WellKnownCACertificates is nil when the cluster does not say (then true).
	WellKnownCACertificates *bool `json:"wellKnownCACertificates,omitempty"`
	// Features are the controller's supported Gateway API features; empty: all of the version.
	Features []string `json:"features,omitempty"`
}

// Supports reports whether the controller supports a Gateway API feature (by its Gateway API
// name): every one when the cluster lists none.
func (g GatewayAPI) Supports(feature string) bool {
	return len(g.Features) == 0 || slices.Contains(g.Features, feature)
}

// SystemRoots reports whether the controller verifies upstream TLS against the system's roots.
func (g GatewayAPI) SystemRoots() bool {
	return g.WellKnownCACertificates == nil || *g.WellKnownCACertificates
}

// DefaultGatewayAPIMinor is the Gateway API release (v1.6) meshcd assumes when a cluster does
// not say: the one whose CRDs it is tested with.
const DefaultGatewayAPIMinor = 6

// Minor is the release's minor version (6 for v1.6).
func (g GatewayAPI) Minor() int {
	var minor int
	if _, err := fmt.Sscanf(g.Version, "v1.%d", &minor); err != nil {
		return DefaultGatewayAPIMinor
	}
	return minor
}

// Experimental reports whether the cluster serves the experimental channel's kinds and fields.
func (g GatewayAPI) Experimental() bool { return g.Channel == "experimental" }

// String names the release and channel, as a cluster declares them.
func (g GatewayAPI) String() string {
	ch := g.Channel
	if ch == "" {
		ch = "standard"
	}
	return fmt.Sprintf("Gateway API v1.%d (%s channel)", g.Minor(), ch)
}

// IstioConfig is what meshcd may write for a cluster's Istio beyond its stable APIs.
type IstioConfig struct {
	EnvoyFilters     bool     `json:"envoyFilters,omitempty"`
	ExtAuthProviders []string `json:"extAuthProviders,omitempty"`
	IngressNamespace string   `json:"ingressNamespace,omitempty"`
	IngressHTTPSPort int      `json:"ingressHTTPSPort,omitempty"`
}

// HTTPSPort is the gateway workloads' own HTTPS port: 8443 unless the cluster says.
func (c IstioConfig) HTTPSPort() int {
	if c.IngressHTTPSPort == 0 {
		return 8443
	}
	return c.IngressHTTPSPort
}

// ContourConfig is what a cluster's Contour is configured to accept.
type ContourConfig struct {
	ExternalNameServices bool `json:"externalNameServices,omitempty"`
}

// Design is one design from designs/<name>/: the services, policies, manifests and gates one
// team declares, and which clusters they go to.
type Design struct {
	Name      string `json:"-"`
	Namespace string `json:"namespace"`
	// OwnsNamespace is what the design says about its Namespace, if anything; NamespaceOwner
	// is the loader's resolution across the repo's designs: whether this design renders it.
	OwnsNamespace  *bool              `json:"ownsNamespace,omitempty"`
	NamespaceOwner bool               `json:"-"`
	Targets        Selector           `json:"targets"`
	Services       map[string]Service `json:"services"`
	Manifests      []Manifest         `json:"manifests"`
	Overrides      []Override         `json:"overrides"`
	Gates          map[string]Gate    `json:"gates"`
	Ingress        *Ingress           `json:"ingress,omitempty"`
	Egress         *Egress            `json:"egress,omitempty"`
	Sync           Sync               `json:"sync"`
	// Dir is the design's folder relative to the repo root, e.g. designs/shop; manifest
	// paths are relative to it.
	Dir string `json:"-"`
	// Files are the design's source files, relative to the repo root.
	Files []string `json:"-"`
	// Value is the validated design with the schema's defaults applied, for the renderer.
	Value cue.Value `json:"-"`

	// user are the design's files' own values, to find where a path was written.
	user []userValue
}

// Selector picks clusters by label, like a Kubernetes label selector. An empty selector
// matches every cluster.
type Selector struct {
	MatchLabels      map[string]string `json:"matchLabels,omitempty"`
	MatchExpressions []Requirement     `json:"matchExpressions,omitempty"`
}

// Requirement is one match expression of a Selector.
type Requirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

type Service struct {
	Port             int                `json:"port"`
	Protocol         string             `json:"protocol"`
	Versions         map[string]Version `json:"versions"`
	Routes           []Route            `json:"routes"`
	Timeout          *Duration          `json:"timeout,omitempty"`
	Retries          *Retries           `json:"retries,omitempty"`
	OutlierDetection *OutlierDetection  `json:"outlierDetection,omitempty"`
	ConnectionPool   *ConnectionPool    `json:"connectionPool,omitempty"`
	LoadBalancer     *LoadBalancer      `json:"loadBalancer,omitempty"`
	MTLS             string             `json:"mtls,omitempty"`
	JWT              *JWT               `json:"jwt,omitempty"`
	RateLimit        *RateLimit         `json:"rateLimit,omitempty"`
	ExtAuth          *MeshExtAuth       `json:"extAuth,omitempty"`
	Authorization    *Authorization     `json:"authorization,omitempty"`
}

// MeshExtAuth is an external authorization server, by the name the cluster's mesh knows it,
// that checks a service's requests but those to SkipPaths.
type MeshExtAuth struct {
	Provider  string   `json:"provider"`
	SkipPaths []string `json:"skipPaths,omitempty"`
}

type Version struct {
	Labels map[string]string `json:"labels"`
}

type Route struct {
	Name    string         `json:"name,omitempty"`
	Match   *Match         `json:"match,omitempty"`
	To      map[string]int `json:"to"`
	Timeout *Duration      `json:"timeout,omitempty"`
	Retries *Retries       `json:"retries,omitempty"`
	Fault   *Fault         `json:"fault,omitempty"`
	Mirror  *Mirror        `json:"mirror,omitempty"`
}

// Mirror copies Percent of a route's requests to Version and drops its answers.
type Mirror struct {
	Version string  `json:"version"`
	Percent float64 `json:"percent"`
}

type StringMatch struct {
	Exact  *string `json:"exact,omitempty"`
	Prefix *string `json:"prefix,omitempty"`
	Regex  *string `json:"regex,omitempty"`
}

// UnmarshalJSON reads a match written as a plain string as an exact match.
func (m *StringMatch) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		m.Exact = &s
		return nil
	}
	type plain StringMatch
	return json.Unmarshal(b, (*plain)(m))
}

type Match struct {
	Path    *StringMatch           `json:"path,omitempty"`
	Headers map[string]StringMatch `json:"headers,omitempty"`
	Method  string                 `json:"method,omitempty"`
}

type Retries struct {
	Attempts      int       `json:"attempts"`
	PerTryTimeout *Duration `json:"perTryTimeout,omitempty"`
	On            []string  `json:"on,omitempty"`
	Codes         []int     `json:"codes,omitempty"`
	Backoff       *Duration `json:"backoff,omitempty"`
}

// CodeList is the retried status codes as text ("429,503"), or "".
func (r *Retries) CodeList() []string {
	var out []string
	for _, c := range r.Codes {
		out = append(out, strconv.Itoa(c))
	}
	return out
}

type Fault struct {
	Delay *struct {
		Fixed   Duration `json:"fixed"`
		Percent float64  `json:"percent"`
	} `json:"delay,omitempty"`
	Abort *struct {
		Status  int     `json:"status"`
		Percent float64 `json:"percent"`
	} `json:"abort,omitempty"`
}

type OutlierDetection struct {
	Consecutive5xxErrors     int      `json:"consecutive5xxErrors"`
	ConsecutiveGatewayErrors int      `json:"consecutiveGatewayErrors,omitempty"`
	Interval                 Duration `json:"interval"`
	BaseEjectionTime         Duration `json:"baseEjectionTime"`
	MaxEjectionPercent       float64  `json:"maxEjectionPercent"`
}

// LoadBalancer is how requests spread over a version's endpoints: an Algorithm, or a Hash for
// session affinity.
type LoadBalancer struct {
	Algorithm string  `json:"algorithm,omitempty"`
	Hash      *LBHash `json:"hash,omitempty"`
}

// LBHash keeps a caller on one endpoint by a header, a cookie or its address (one of them).
type LBHash struct {
	Header   string    `json:"header,omitempty"`
	Cookie   *LBCookie `json:"cookie,omitempty"`
	SourceIP bool      `json:"sourceIP,omitempty"`
}

type LBCookie struct {
	Name string    `json:"name"`
	TTL  *Duration `json:"ttl,omitempty"`
}

type ConnectionPool struct {
	MaxConnections           int       `json:"maxConnections,omitempty"`
	MaxPendingRequests       int       `json:"maxPendingRequests,omitempty"`
	MaxRequestsPerConnection int       `json:"maxRequestsPerConnection,omitempty"`
	ConnectTimeout           *Duration `json:"connectTimeout,omitempty"`
	IdleTimeout              *Duration `json:"idleTimeout,omitempty"`
}

// Authorization is who may call a service and what they may ask. Allow nil (not given) and
// Deny set lets everything else pass; Allow nil and Deny empty refuses everyone.
type Authorization struct {
	Allow []AccessRule `json:"allow"`
	Deny  []AccessRule `json:"deny,omitempty"`
}

// AllowsAll reports whether requests no deny rule matches pass without an allow list.
func (a *Authorization) AllowsAll() bool {
	return a.Allow == nil && len(a.Deny) > 0
}

// AccessRule matches requests by who sends them and what they ask; every field given must
// match.
type AccessRule struct {
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`
	Namespaces      []string `json:"namespaces,omitempty"`
	IPBlocks        []string `json:"ipBlocks,omitempty"`
	Paths           []string `json:"paths,omitempty"`
	Methods         []string `json:"methods,omitempty"`
	Ports           []int    `json:"ports,omitempty"`
	Hosts           []string `json:"hosts,omitempty"`
}

// Who reports whether the rule names its callers.
func (r AccessRule) Who() bool {
	return len(r.ServiceAccounts) > 0 || len(r.Namespaces) > 0 || len(r.IPBlocks) > 0
}

// What reports whether the rule narrows the requests by what they ask (ports aside).
func (r AccessRule) What() bool {
	return len(r.Paths) > 0 || len(r.Methods) > 0 || len(r.Hosts) > 0
}

// Manifest is exactly one of a kustomize folder, a Helm chart or a folder of plain YAML,
// with paths relative to the design's folder.
type Manifest struct {
	Kustomize string `json:"kustomize,omitempty"`
	Helm      *Helm  `json:"helm,omitempty"`
	YAML      string `json:"yaml,omitempty"`
}

type Helm struct {
	Chart       string         `json:"chart"`
	ReleaseName string         `json:"releaseName,omitempty"`
	Values      map[string]any `json:"values,omitempty"`
	ValueFiles  []string       `json:"valueFiles,omitempty"`
}

type Gate struct {
	URL        string      `json:"url,omitempty"`
	GRPC       *GRPC       `json:"grpc,omitempty"`
	PreviewURL string      `json:"previewURL,omitempty"`
	Load       LoadProfile `json:"load"`
	Thresholds Thresholds  `json:"thresholds"`
	Baseline   *Baseline   `json:"baseline,omitempty"`
	Compare    *Compare    `json:"compare,omitempty"`
	Schedule   string      `json:"schedule,omitempty"`
	Triggers   []string    `json:"triggers"`
	Rollout    *Rollout    `json:"rollout,omitempty"`
}

type LoadProfile struct {
	QPS         float64           `json:"qps"`
	Connections int               `json:"connections"`
	Duration    *Duration         `json:"duration,omitempty"`
	Requests    int               `json:"requests,omitempty"`
	Warmup      *Duration         `json:"warmup,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Payload     string            `json:"payload,omitempty"`
}

type Thresholds struct {
	P50         *Duration `json:"p50,omitempty"`
	P90         *Duration `json:"p90,omitempty"`
	P99         *Duration `json:"p99,omitempty"`
	ErrorRate   *float64  `json:"errorRate,omitempty"`
	MinQPSRatio *float64  `json:"minQPSRatio,omitempty"`
}

type Baseline struct {
	Branch        string `json:"branch"`
	MaxRegression string `json:"maxRegression"`
}

// GRPC is a gRPC gate's target and what it calls there.
type GRPC struct {
	Target  string `json:"target"`
	Service string `json:"service,omitempty"`
	Ping    bool   `json:"ping,omitempty"`
	Method  string `json:"method,omitempty"`
	Payload string `json:"payload,omitempty"`
	TLS     bool   `json:"tls"`
}

// Compare is a side-by-side gate: two versions loaded in one run, the candidate judged
// against the baseline version.
type Compare struct {
	Baseline             string            `json:"baseline"`
	Candidate            string            `json:"candidate"`
	URLs                 map[string]string `json:"urls,omitempty"`
	MaxRegression        string            `json:"maxRegression"`
	MinDifference        *Duration         `json:"minDifference,omitempty"`
	MaxErrorRateIncrease float64           `json:"maxErrorRateIncrease"`
	Slice                *Duration         `json:"slice,omitempty"`
}

// VersionURL is where a compared version's load goes: its entry in urls, or the template
// (url or previewURL) with "{version}" replaced.
func (c *Compare) VersionURL(template, version string) string {
	if u, ok := c.URLs[version]; ok {
		return u
	}
	return strings.ReplaceAll(template, "{version}", version)
}

type Rollout struct {
	Service string `json:"service"`
	Version string `json:"version"`
	Steps   []int  `json:"steps"`
	// Current is the weight the version has now (meshcd's rollout file sets it); nil before
	// the first step, when the routes apply as written.
	Current *int `json:"current,omitempty"`
	// Held says why meshcd stopped advancing (a gate failed and it rolled back).
	Held string `json:"held,omitempty"`
}

type Override struct {
	Cluster  string                     `json:"cluster,omitempty"`
	Selector *Selector                  `json:"selector,omitempty"`
	Values   map[string]any             `json:"values,omitempty"`
	Services map[string]ServiceOverride `json:"services,omitempty"`
	Replicas *int                       `json:"replicas,omitempty"`
	Patches  []Patch                    `json:"patches,omitempty"`
}

type ServiceOverride struct {
	Weights map[string]int `json:"weights,omitempty"`
}

type Patch struct {
	Target struct {
		Kind string `json:"kind"`
		Name string `json:"name,omitempty"`
	} `json:"target"`
	Patch string `json:"patch"`
}

// DriftMode says what meshcd does when a live object differs from what it applied.
type DriftMode string

const (
	DriftHeal   DriftMode = "heal"
	DriftReport DriftMode = "report"
	DriftIgnore DriftMode = "ignore"
)

type Sync struct {
	Prune         bool `json:"prune"`
	AllowEmpty    bool `json:"allowEmpty"`
	TakeOwnership bool `json:"takeOwnership"`
	// Adopt takes over live objects labelled for another design (moving an object between
	// designs or repos); without it meshcd refuses them.
	Adopt bool `json:"adopt"`
	// PruneNamespaces and PrunePersistentVolumeClaims opt in to deleting those kinds when a
	// design drops them; they hold data, so prune alone never does.
	PruneNamespaces             bool         `json:"pruneNamespaces"`
	PrunePersistentVolumeClaims bool         `json:"prunePersistentVolumeClaims"`
	Suspend                     bool         `json:"suspend"`
	Drift                       DriftMode    `json:"drift"`
	Ignore                      []IgnoreRule `json:"ignore"`
	Presets                     []string     `json:"presets"`
}

type IgnoreRule struct {
	Kind  string   `json:"kind,omitempty"`
	Name  string   `json:"name,omitempty"`
	Paths []string `json:"paths"`
}

// Duration is a Go duration string ("250ms", "1h30m") as written in a design.
type Duration struct {
	time.Duration
	Text string
}

// UnmarshalText parses a duration as the schema already checked its syntax.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q: %w", b, err)
	}
	d.Duration, d.Text = v, string(b)
	return nil
}

// MarshalText writes the duration as the user wrote it.
func (d Duration) MarshalText() ([]byte, error) {
	if d.Text != "" {
		return []byte(d.Text), nil
	}
	return []byte(d.Duration.String()), nil
}

// Egress is what a design's workloads call outside the mesh, and whether they may call
// anything else (Policy "allow-all" or "registry-only").
type Egress struct {
	Hosts  []EgressHost `json:"hosts"`
	Policy string       `json:"policy"`
}

type EgressHost struct {
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
	// OriginateTLS, when set, has the mesh open TLS to the host for a workload that speaks
	// plain HTTP to a Service of the design's namespace.
	OriginateTLS *OriginateTLS `json:"originateTLS,omitempty"`
}

// OriginateTLS names the Service a workload calls in plain HTTP for an external host the mesh
// reaches over TLS.
type OriginateTLS struct {
	Service string `json:"service"`
}
