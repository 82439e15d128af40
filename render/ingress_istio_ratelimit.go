package render

import (
	"fmt"

	"github.com/meshcd/meshcd/schema"
)

// istioGatewayRateLimits renders a design's local rate limits at the Istio ingress gateway, where
// Istio has no API for them: one EnvoyFilter in the gateway's namespace (an EnvoyFilter selects
// workloads of its own namespace only). It puts a local rate limit filter of the design's own
// in the gateway's HTTP filters, inert by itself, and gives it a token bucket per virtual host
// (a host's limit) and per route (a route's, in place of the host's on that route). It returns
// the name each limited route must carry in its VirtualService, by the route's src: Envoy knows
// a route by that name, which is how the filter finds it.
//
// The filter is the design's own so that two designs' filters never read one bucket: an
// owner's host limit and a team's route limit under it both count a team's request (on Contour
// the team's replaces the owner's).
func istioGatewayRateLimits(in *compileInput, hosts []ingressHost, out *output) (map[string]string, error) {
	at := ""
	for _, h := range hosts {
		if h.limit != nil && at == "" {
			at = fmt.Sprintf("ingress.hosts.%q.rateLimit", h.host)
		}
		for _, r := range h.routes {
			if r.RateLimit != nil && at == "" {
				at = r.src + ".rateLimit"
			}
		}
	}
	if at == "" {
		return nil, nil
	}
	if !in.cluster.Istio.EnvoyFilters {
		return nil, in.fail(at, "istio has no local rate limit at the gateway but an EnvoyFilter, which meshcd writes only where the cluster opts in (istio: envoyFilters: true; an Istio upgrade may break it); without one every request would pass")
	}
	gwns := in.cluster.Istio.IngressNamespace
	if gwns == "" {
		return nil, in.fail(at, "istio reads an EnvoyFilter for the ingress gateway only from the gateway's namespace, which the cluster must name (istio: ingressNamespace); without one every request would pass")
	}
	ns := in.design.Namespace
	filter := "meshcd.local_ratelimit." + ns
	patches := []any{map[string]any{
		"applyTo": "HTTP_FILTER",
		"match": map[string]any{
			"context":  "GATEWAY",
			"listener": map[string]any{"filterChain": beforeRouter()},
		},
		// Without a bucket of its own the filter limits only where a host or route gives one.
		"patch": map[string]any{"operation": "INSERT_BEFORE", "value": map[string]any{
			"name": filter,
			"typed_config": map[string]any{
				"@type":       localRateLimitType,
				"stat_prefix": "meshcd_ratelimit",
			},
		}},
	}}
	names := map[string]string{}
	for _, h := range hosts {
		if h.passthrough != nil {
			continue
		}
		if h.limit != nil {
			// Istio names a gateway's virtual host by the host and the Gateway server's port.
			port := 80
			if h.tls != nil {
				port = 443
			}
			patches = append(patches, map[string]any{
				"applyTo": "VIRTUAL_HOST",
				"match":   map[string]any{"context": "GATEWAY", "routeConfiguration": map[string]any{"vhost": map[string]any{"name": fmt.Sprintf("%s:%d", h.host, port)}}},
				"patch":   map[string]any{"operation": "MERGE", "value": perFilterRateLimit(filter, h.limit)},
			})
		}
		for _, r := range h.routes {
			if r.RateLimit == nil {
				continue
			}
			name := fmt.Sprintf("%s-ratelimit-%d", ns, len(names))
			names[r.src] = name
			// Istio merges a team's route into the owner's delegate route under the name
			// <owner's route>-<team's route>.
			envoyName := name
			if !h.owned {
				envoyName = "delegate-" + ns + "-" + name
			}
			patches = append(patches, map[string]any{
				"applyTo": "HTTP_ROUTE",
				"match":   map[string]any{"context": "GATEWAY", "routeConfiguration": map[string]any{"vhost": map[string]any{"route": map[string]any{"name": envoyName}}}},
				"patch":   map[string]any{"operation": "MERGE", "value": perFilterRateLimit(filter, r.RateLimit)},
			})
		}
	}
	out.add(newObject("networking.istio.io/v1alpha3", "EnvoyFilter", gwns, "ingress-ratelimit-"+ns, map[string]any{
		"workloadSelector": map[string]any{"labels": map[string]any{"istio": "ingressgateway"}},
		// A relative insert without a priority may land out of order (IST0151).
		"priority":      int64(10),
		"configPatches": patches,
	}))
	return names, nil
}

// beforeRouter matches a listener's HTTP filter chain at its router, where an HTTP filter is
// inserted before it.
func beforeRouter() map[string]any {
	return map[string]any{"filter": map[string]any{
		"name":      "envoy.filters.network.http_connection_manager",
		"subFilter": map[string]any{"name": "envoy.filters.http.router"},
	}}
}

const localRateLimitType = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"

// perFilterRateLimit is a virtual host's or route's configuration of the named local rate limit
// filter. Each gateway replica counts for itself.
func perFilterRateLimit(filter string, l *schema.RateLimit) map[string]any {
	return map[string]any{"typed_per_filter_config": map[string]any{filter: localRateLimit(l)}}
}

// localRateLimit is Envoy's local rate limit configuration for l: a token bucket refilled with
// requests per unit and holding burst more (Contour's meaning of burst), answering 429 when
// empty, on every request.
func localRateLimit(l *schema.RateLimit) map[string]any {
	bucket := l.Requests + l.Burst
	fill := map[string]string{"second": "1s", "minute": "60s", "hour": "3600s"}[l.Unit]
	all := map[string]any{"numerator": int64(100), "denominator": "HUNDRED"}
	return map[string]any{
		"@type":           localRateLimitType,
		"stat_prefix":     "meshcd_ratelimit",
		"token_bucket":    map[string]any{"max_tokens": int64(bucket), "tokens_per_fill": int64(l.Requests), "fill_interval": fill},
		"filter_enabled":  map[string]any{"runtime_key": "local_rate_limit_enabled", "default_value": all},
		"filter_enforced": map[string]any{"runtime_key": "local_rate_limit_enforced", "default_value": all},
	}
}
