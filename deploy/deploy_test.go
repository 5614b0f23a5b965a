// Package deploy holds the checks of the deployment files at the
// repository root: docker-compose.yml and the Helm chart in charts/.
package deploy

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// TestComposeFile loads docker-compose.yml with the compose-spec loader
// and checks the cluster's shape: NATS, Redis, two workers, two edges,
// each node locked down and joining the others' gossip, every edge with a
// Redis URL.
func TestComposeFile(t *testing.T) {
	path, _ := filepath.Abs("../docker-compose.yml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  filepath.Dir(path),
		ConfigFiles: []types.ConfigFile{{Filename: path, Content: b}},
		Environment: types.Mapping{"DHTRELAY_GOSSIP_KEY": "a2V5"},
	}, func(o *loader.Options) { o.SetProjectName("dht-relay", true) })
	if err != nil {
		t.Fatalf("compose-spec: %v", err)
	}
	roles := map[string]int{}
	for name, s := range p.Services {
		switch {
		case name == "nats" || name == "redis":
			roles[name]++
			continue
		case len(s.Entrypoint) == 1 && filepath.Base(s.Entrypoint[0]) == "dhtworker":
			roles["worker"]++
		case len(s.Entrypoint) == 1 && filepath.Base(s.Entrypoint[0]) == "edge":
			roles["edge"]++
		default:
			t.Errorf("service %s has no known role", name)
			continue
		}
		if !s.ReadOnly || len(s.CapDrop) == 0 {
			t.Errorf("service %s is not locked down (read_only, cap_drop)", name)
		}
		if h := s.HealthCheck; h == nil || len(h.Test) < 3 || h.Test[2] != "--probe" || s.Environment["DHTRELAY_METRICS"] == nil {
			t.Errorf("service %s has no health check probing its own /readyz", name)
		}
		if s.Environment["DHTRELAY_NATS"] == nil {
			t.Errorf("service %s has no NATS URL", name)
		}
		if s.Environment["DHTRELAY_GOSSIP_JOIN"] == nil {
			t.Errorf("service %s joins no gossip", name)
		}
		if k := s.Environment["DHTRELAY_GOSSIP_KEY"]; k == nil || *k != "a2V5" {
			t.Errorf("service %s gossips without the key given", name)
		}
		if filepath.Base(s.Entrypoint[0]) == "edge" && s.Environment["DHTRELAY_REDIS"] == nil {
			t.Errorf("edge %s has no Redis URL", name)
		}
	}
	if roles["nats"] != 1 || roles["redis"] != 1 || roles["worker"] != 2 || roles["edge"] != 2 {
		t.Fatalf("cluster shape %v", roles)
	}
}

// TestDashboardAndAlertsUseExportedMetrics: every dhtrelay_ series the
// Grafana dashboard and the chart's alert rules query is one the README
// lists as exported, and the dashboard is valid JSON.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	series := regexp.MustCompile(`dhtrelay_[a-z_]+`)
	exported := map[string]bool{}
	for _, m := range series.FindAllString(string(readme), -1) {
		exported[strings.TrimSuffix(m, "_bucket")] = true
	}
	dash, err := os.ReadFile("grafana/dht-relay.json")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(dash) {
		t.Fatal("the dashboard is not JSON")
	}
	rules, err := os.ReadFile("../charts/dht-relay/templates/prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range [][]byte{dash, rules} {
		for _, m := range series.FindAllString(string(src), -1) {
			if !exported[strings.TrimSuffix(m, "_bucket")] {
				t.Errorf("%s is queried but not among the exported series the README lists", m)
			}
		}
	}
}
