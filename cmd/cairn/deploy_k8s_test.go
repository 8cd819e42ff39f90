package main

// Issue 20: the Kubernetes manifests in deploy/kubernetes are decoded
// strictly with the Kubernetes API types (an unknown or misspelt field is an
// error, as `kubectl apply --validate=strict` would say), and checked against
// what the binary does: the ConfigMap's config passes `cairn check` with the
// Secret's keys as its only environment, the probes name endpoints the admin
// listener serves, and the grace period covers drain_timeout.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/cairnhq/cairn/configs"
)

const k8sDir = "../../deploy/kubernetes"

// k8sKinds maps apiVersion/kind to the API type a document must decode into.
var k8sKinds = map[string]func() any{
	"v1/Namespace":                  func() any { return new(corev1.Namespace) },
	"v1/ConfigMap":                  func() any { return new(corev1.ConfigMap) },
	"v1/Secret":                     func() any { return new(corev1.Secret) },
	"v1/Service":                    func() any { return new(corev1.Service) },
	"apps/v1/Deployment":            func() any { return new(appsv1.Deployment) },
	"apps/v1/StatefulSet":           func() any { return new(appsv1.StatefulSet) },
	"policy/v1/PodDisruptionBudget": func() any { return new(policyv1.PodDisruptionBudget) },
	// Not in k8s.io/api (a Prometheus Operator CRD): decoded into the
	// subset of its schema the example uses, strictly all the same.
	"monitoring.coreos.com/v1/PodMonitor":           func() any { return new(podMonitor) },
	"kustomize.config.k8s.io/v1beta1/Kustomization": func() any { return new(kustomization) },
}

type podMonitor struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		PodMetricsEndpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			Authorization struct {
				Type        string                   `json:"type"`
				Credentials corev1.SecretKeySelector `json:"credentials"`
			} `json:"authorization"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
}

// k8sObjects decodes every document of every manifest strictly and returns
// them by "Kind/name".
func k8sObjects(t *testing.T) (map[string]any, []string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", k8sDir, err)
	}
	objs := map[string]any{}
	var names []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Base(f))
		for i, doc := range splitYAMLDocs(data) {
			obj, key, err := decodeK8s(doc)
			if err != nil {
				t.Errorf("%s document %d: %v", filepath.Base(f), i, err)
				continue
			}
			if _, dup := objs[key]; dup {
				t.Errorf("%s: %s defined twice", filepath.Base(f), key)
			}
			objs[key] = obj
		}
	}
	return objs, names
}

func splitYAMLDocs(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(data, []byte("\n---")) {
		if len(bytes.TrimSpace(stripYAMLComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripYAMLComments(d []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(d, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(append(out, l...), '\n')
		}
	}
	return out
}

// decodeK8s converts one YAML document to JSON (duplicate keys are errors)
// and decodes it into its API type with unknown fields refused.
func decodeK8s(doc []byte) (any, string, error) {
	js, err := sigsyaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, "", fmt.Errorf("yaml: %w", err)
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return nil, "", err
	}
	mk, ok := k8sKinds[head.APIVersion+"/"+head.Kind]
	if !ok {
		return nil, "", fmt.Errorf("%s %s: no API type known to the test", head.APIVersion, head.Kind)
	}
	// The API server's own decoding: field names match case-sensitively
	// (encoding/json would take "targetport" for targetPort), unknown and
	// duplicate fields are errors, as with kubectl apply --validate=strict.
	obj := mk()
	strict, err := sigsjson.UnmarshalStrict(js, obj, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err == nil && len(strict) > 0 {
		err = errors.Join(strict...)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%s %q: %w", head.Kind, head.Metadata.Name, err)
	}
	return obj, head.Kind + "/" + head.Metadata.Name, nil
}

func TestDeployK8sStrictDecodeRefusesUnknownFields(t *testing.T) {
	// The check itself: a misspelt field must fail, or the test proves nothing.
	bad := []string{
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 3}\n",
		"apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80, targetport: 8080}]}\n",
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, name: y}\n",
		"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
	}
	for _, doc := range bad {
		if _, _, err := decodeK8s([]byte(doc)); err == nil {
			t.Errorf("decodeK8s(%q) = nil error; want one", doc)
		}
	}
}

func TestDeployK8sManifests(t *testing.T) {
	objs, files := k8sObjects(t)
	get := func(key string) any {
		t.Helper()
		o, ok := objs[key]
		if !ok {
			t.Fatalf("manifests define no %s (have %v)", key, slices.Sorted(maps.Keys(objs)))
		}
		return o
	}
	dep := get("Deployment/cairn").(*appsv1.Deployment)
	cm := get("ConfigMap/cairn-config").(*corev1.ConfigMap)
	sec := get("Secret/cairn-secrets").(*corev1.Secret)
	svc := get("Service/cairn").(*corev1.Service)
	pdb := get("PodDisruptionBudget/cairn").(*policyv1.PodDisruptionBudget)
	redis := get("StatefulSet/cairn-redis").(*appsv1.StatefulSet)
	get("Service/cairn-redis")
	kus := get("Kustomization/").(*kustomization)
	pm := get("PodMonitor/cairn").(*podMonitor)

	// kustomization lists every manifest but itself and the CRD example.
	var want []string
	for _, f := range files {
		if f != "kustomization.yaml" && f != "podmonitor.yaml" {
			want = append(want, f)
		}
	}
	if got := slices.Sorted(slices.Values(kus.Resources)); !slices.Equal(got, want) {
		t.Errorf("kustomization resources = %v; want every manifest %v", got, want)
	}

	// The config passes `cairn check` with the Secret's keys as the only
	// environment, and the Secret holds exactly the *_env names it uses.
	src, ok := cm.Data["cairn.yaml"]
	if !ok {
		t.Fatalf("ConfigMap cairn-config has no cairn.yaml (keys %v)", slices.Sorted(maps.Keys(cm.Data)))
	}
	secretKeys := map[string]bool{}
	for k := range sec.StringData {
		secretKeys[k] = true
	}
	for k := range sec.Data {
		secretKeys[k] = true
	}
	cfg, err := configs.Load([]byte(src), configs.Options{LookupEnv: func(k string) (string, bool) {
		if secretKeys[k] {
			return "deploy-test-secret-" + k, true
		}
		return "", false
	}})
	if err != nil {
		t.Fatalf("the ConfigMap's config fails validation with the Secret's keys as environment:\n%v", err)
	}
	envNames := configEnvNames(t, []byte(src))
	if got, want := slices.Sorted(maps.Keys(secretKeys)), envNames; !slices.Equal(got, want) {
		t.Errorf("Secret cairn-secrets keys = %v; want the config's *_env names %v", got, want)
	}
	checkWithBinary(t, src, secretKeys)

	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("Deployment replicas = %v; want 3", dep.Spec.Replicas)
	}
	if cfg.RateLimit.Replicas != 3 {
		t.Errorf("ratelimit.replicas = %d; want the Deployment's 3", cfg.RateLimit.Replicas)
	}
	if cfg.RedisURL == "" {
		t.Error("redis_url is empty: three replicas would not share limits, incidents or overrides")
	} else if !strings.Contains(cfg.RedisURL, redis.Name) {
		t.Errorf("redis_url %q does not name the StatefulSet's service %q", cfg.RedisURL, redis.Spec.ServiceName)
	}
	if redis.Spec.ServiceName != "cairn-redis" {
		t.Errorf("redis StatefulSet serviceName = %q; want cairn-redis", redis.Spec.ServiceName)
	}

	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("Deployment has %d containers; want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if !slices.Equal(c.Args, []string{"serve", "--config", "/etc/cairn/cairn.yaml"}) {
		t.Errorf("container args = %v", c.Args)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if want := portOf(t, cfg.Listen); ports["http"] != want {
		t.Errorf("container port http = %d; config listen %s", ports["http"], cfg.Listen)
	}
	if want := portOf(t, cfg.AdminListen); ports["admin"] != want {
		t.Errorf("container port admin = %d; config admin_listen %s", ports["admin"], cfg.AdminListen)
	}
	// Probes: on the admin port, the endpoints the admin listener answers
	// without a token (proxy/admin.go).
	for _, pr := range []struct {
		name string
		p    *corev1.Probe
		path string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe on %s", pr.name, pr.path)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path || pr.p.HTTPGet.Port != intstr.FromString("admin") {
			t.Errorf("%s = %s on %v; want %s on the admin port", pr.name, pr.p.HTTPGet.Path, pr.p.HTTPGet.Port.String(), pr.path)
		}
	}
	// Shutdown: the grace period covers the preStop sleep and the drain.
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Fatal("no preStop sleep: the pod would get SIGTERM while still in the Service's endpoints")
	}
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	drain := cfg.Server.DrainTimeout.D()
	if pod.TerminationGracePeriodSeconds == nil {
		t.Fatal("terminationGracePeriodSeconds unset (30s default is not above drain_timeout)")
	}
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	// After the drain, Gateway.Shutdown flushes capture, incidents and
	// spans within 10 s (proxy/gateway.go).
	const flush = 10 * time.Second
	if grace <= preStop+drain+flush {
		t.Errorf("terminationGracePeriodSeconds %v <= preStop %v + drain_timeout %v + flush %v: SIGKILL would cut the shutdown", grace, preStop, drain, flush)
	}
	// Read-only root, non-root, data_dir on a volume.
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("container root filesystem is not read-only")
	}
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("pod does not require a non-root user")
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	if mounts[cfg.DataDir] == "" {
		t.Errorf("data_dir %s is not a volume mount (mounts %v)", cfg.DataDir, mounts)
	}
	if mounts[filepath.Dir("/etc/cairn/cairn.yaml")] != "config" {
		t.Errorf("/etc/cairn is not the config volume (mounts %v)", mounts)
	}
	for _, v := range pod.Volumes {
		if v.Name == "config" && (v.ConfigMap == nil || v.ConfigMap.Name != cm.Name) {
			t.Errorf("volume config is not ConfigMap %s", cm.Name)
		}
		if v.Name == mounts[cfg.DataDir] && v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil {
			if lim := v.EmptyDir.SizeLimit.Value(); cfg.Capture.MaxTotalBytes <= 0 || cfg.Capture.MaxTotalBytes > lim/2 {
				t.Errorf("capture.max_total_bytes %d does not fit the data volume (%d bytes) with room for spill", cfg.Capture.MaxTotalBytes, lim)
			}
		}
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != sec.Name {
		t.Errorf("container envFrom = %+v; want the Secret %s", c.EnvFrom, sec.Name)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources = %+v; want cpu and memory requests and a memory limit", c.Resources)
	}
	if lim := c.Resources.Limits.Memory().Value(); lim < 256<<20 {
		t.Errorf("memory limit %d is below the 256 MiB the default budgets keep RSS under", lim)
	}

	// Selectors line up.
	podLabels := dep.Spec.Template.Labels
	for name, sel := range map[string]map[string]string{
		"Deployment selector": dep.Spec.Selector.MatchLabels,
		"Service selector":    svc.Spec.Selector,
		"PDB selector":        pdb.Spec.Selector.MatchLabels,
		"PodMonitor selector": pm.Spec.Selector.MatchLabels,
	} {
		for k, v := range sel {
			if podLabels[k] != v {
				t.Errorf("%s %s=%s does not match the pod labels %v", name, k, v, podLabels)
			}
		}
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort != intstr.FromString("http") {
		t.Errorf("Service ports = %+v; want the API port only", svc.Spec.Ports)
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PDB maxUnavailable = %v; want 1", pdb.Spec.MaxUnavailable)
	}
	ann := dep.Spec.Template.Annotations
	if ann["prometheus.io/port"] != strconv.Itoa(int(ports["admin"])) || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v do not point at the admin port's /metrics", ann)
	}
	ep := pm.Spec.PodMetricsEndpoints
	if len(ep) != 1 || ep[0].Port != "admin" || ep[0].Path != "/metrics" ||
		ep[0].Authorization.Credentials.Name != sec.Name || ep[0].Authorization.Credentials.Key != cfg.AdminTokenEnv {
		t.Errorf("PodMonitor endpoints = %+v; want admin:/metrics with the admin token %s from %s", ep, cfg.AdminTokenEnv, sec.Name)
	}
}

// configEnvNames returns every value of a key ending in _env anywhere in the
// config, sorted and unique: the environment the gateway reads secrets from.
func configEnvNames(t *testing.T, src []byte) []string {
	t.Helper()
	var root any
	if err := yaml.Unmarshal(src, &root); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && strings.HasSuffix(k, "_env") && s != "" {
					seen[s] = true
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(root)
	return slices.Sorted(maps.Keys(seen))
}

// checkWithBinary runs the real `cairn check` on the ConfigMap's config
// with only the Secret's keys (and PATH) in the environment.
func checkWithBinary(t *testing.T, src string, secretKeys map[string]bool) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cairn.yaml")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cairnBin, "check", "--config", p)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	keys := slices.Sorted(maps.Keys(secretKeys))
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"=deploy-test-secret-"+k)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok: ") {
		t.Errorf("cairn check on the ConfigMap's config: %v\n%s", err, out)
	}
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return int32(n)
}
