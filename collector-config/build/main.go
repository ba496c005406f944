// Program otelcol-spanlake is an OpenTelemetry Collector with exactly the components the
// configs in collector-config/ use, pinned to one Collector release (see components.go).
//
// It is the hand-written equivalent of what the OpenTelemetry Collector Builder generates
// from a manifest, so building it needs only `go build` and the Go module proxy.
package main

import (
	"os"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/otelcol"
)

func main() {
	set := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "otelcol-spanlake",
			Description: "OpenTelemetry Collector for spanlake pipelines (collector-config/)",
			Version:     "0.161.0-spanlake",
		},
		Factories: components,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				// file: for --config PATH, env: for the ${env:VAR:-default} references.
				ProviderFactories: []confmap.ProviderFactory{
					envprovider.NewFactory(),
					fileprovider.NewFactory(),
				},
			},
		},
	}
	if err := otelcol.NewCommand(set).Execute(); err != nil {
		// cobra has already printed the error.
		os.Exit(1)
	}
}
