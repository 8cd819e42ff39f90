package main

// Issue 20: the Dockerfile's build line makes a static binary (what a
// FROM scratch image needs: no dynamic loader, no libc), and its final
// stage runs as a non-root user with data_dir on a volume. Docker itself
// may not run here, so the test runs the Dockerfile's own `go build` line.

import (
	"bufio"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerfileStages returns the Dockerfile's instructions per stage
// (continuation lines joined, comments dropped).
func dockerfileStages(t *testing.T) [][]string {
	t.Helper()
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages [][]string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur.WriteString(strings.TrimSuffix(l, "\\") + " ")
			continue
		}
		cur.WriteString(l)
		ins := cur.String()
		cur.Reset()
		if strings.HasPrefix(strings.ToUpper(ins), "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %q before the first FROM", ins)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], ins)
	}
	return stages
}

func TestDeployDockerfileStaticNonRoot(t *testing.T) {
	stages := dockerfileStages(t)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages; want a build stage and a runtime stage", len(stages))
	}
	// The build line: the RUN in the build stage that calls go build.
	var build string
	for _, ins := range stages[0] {
		if strings.HasPrefix(ins, "RUN ") && strings.Contains(ins, "go build") {
			build = strings.TrimPrefix(ins, "RUN ")
		}
	}
	m := regexp.MustCompile(`^CGO_ENABLED=0 go build (.*) -o (\S+) \./cmd/cairn$`).FindStringSubmatch(build)
	if m == nil {
		t.Fatalf("Dockerfile build line %q; want `CGO_ENABLED=0 go build FLAGS -o OUT ./cmd/cairn`", build)
	}
	flags := regexp.MustCompile(`-ldflags="([^"]*)"|\S+`).FindAllStringSubmatch(m[1], -1)
	args := []string{"build"}
	for _, f := range flags {
		if f[1] != "" {
			args = append(args, "-ldflags="+f[1])
		} else {
			args = append(args, f[0])
		}
	}
	bin := filepath.Join(t.TempDir(), "cairn")
	args = append(args, "-o", bin, ".")
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	assertStatic(t, bin)

	// The runtime stage.
	rt := stages[len(stages)-1]
	find := func(prefix string) string {
		for _, ins := range rt {
			if strings.HasPrefix(ins, prefix) {
				return strings.TrimPrefix(ins, prefix)
			}
		}
		return ""
	}
	if from := find("FROM "); from != "scratch" {
		t.Errorf("runtime stage FROM %q; want scratch (the binary is static)", from)
	}
	user := find("USER ")
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" || !regexp.MustCompile(`^\d+$`).MatchString(uid) {
		t.Errorf("USER %q; want a numeric non-root user (runAsNonRoot needs a number)", user)
	}
	if vol := find("VOLUME "); !strings.Contains(vol, "/var/lib/cairn") {
		t.Errorf("VOLUME %q; want data_dir /var/lib/cairn", vol)
	}
	if ep := find("ENTRYPOINT "); ep != `["/usr/local/bin/cairn"]` {
		t.Errorf("ENTRYPOINT %s", ep)
	}
	if !slices.ContainsFunc(rt, func(s string) bool { return strings.Contains(s, "ca-certificates.crt") }) {
		t.Error("runtime stage has no CA bundle: TLS to providers would fail")
	}
}

// assertStatic fails unless the ELF file at p has no program interpreter
// and no DT_NEEDED libraries.
func assertStatic(t *testing.T, p string) {
	t.Helper()
	f, err := elf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %v program header: not static", p, prog.Type)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("%s needs %v: not static", p, libs)
	}
}
