package envoycheck

import (
	"fmt"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// HCMType is the type URL of the HTTP connection manager's config.
const HCMType = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

// ConnectionManagers unpacks every HTTP connection manager in the static
// listeners, in listener and filter-chain order. The returned messages are
// new copies owned by the caller.
func ConnectionManagers(b *bootstrapv3.Bootstrap) ([]*hcmv3.HttpConnectionManager, error) {
	var out []*hcmv3.HttpConnectionManager
	for li, l := range b.GetStaticResources().GetListeners() {
		for ci, fc := range l.GetFilterChains() {
			for fi, f := range fc.GetFilters() {
				if f.GetTypedConfig().GetTypeUrl() != HCMType {
					continue
				}
				h := &hcmv3.HttpConnectionManager{}
				if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
					return nil, fmt.Errorf("envoycheck: listeners[%d].filter_chains[%d].filters[%d]: %w", li, ci, fi, err)
				}
				out = append(out, h)
			}
		}
	}
	return out, nil
}
