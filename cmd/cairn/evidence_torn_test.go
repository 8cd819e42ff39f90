package main

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitSettled waits until /metrics says every record so far is written
// to the files (nothing queued, held or open).
func waitSettled(t *testing.T, admin string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := metrics(t, admin)
		if metricValue(t, m, `cairn_capture_sink_written_total{sink="file"}`) >= want && metricValue(t, m, "cairn_capture_queue_depth") == 0 &&
			metricValue(t, m, `cairn_capture_sink_pending{sink="file"}`) == 0 && metricValue(t, m, "cairn_capture_records_open") == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("records not written 10 s on:\n%s", grepLines(m, "cairn_capture"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A SIGKILL in the middle of a write leaves a torn final line (the kernel
// stops a large write at a fatal signal). On restart the real binary seals
// it and counts it, appends new records on lines of their own, and both
// `cairn requests show` and GET /admin/requests/{id} find every whole
// record, before and after the torn one; the torn request is reported not
// found rather than breaking the lookup.
func TestEvidenceTornLineAfterSIGKILL(t *testing.T) {
	mock := startMockProc(t, "mk")
	g := startRelGateway(t, strings.ReplaceAll(killLoadConfig, "%[4]s", mock))
	body := chatBody("support-bot", `"user":"`+strings.Repeat("x", 40<<10)+`"`)
	var ids []string
	send := func(n int) {
		for range n {
			r := postChat(g.api, "", body)
			if r.status != 200 {
				t.Fatalf("chat = %d %v", r.status, r.err)
			}
			ids = append(ids, r.id)
		}
	}
	send(5)
	waitSettled(t, g.admin, 5)
	g.gw.cmd.Process.Signal(syscall.SIGKILL)
	g.gw.wait()

	// The kill cut the next record's write halfway.
	files, _ := filepath.Glob(filepath.Join(g.dataDir, "capture", "*.jsonl"))
	if len(files) != 1 {
		t.Fatalf("%d capture files; want 1", len(files))
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	last := lines[len(lines)-1]
	const tornID = "req_01TORNTORNTORNTORNTORNTOR"
	torn := bytes.Replace(last, []byte(ids[len(ids)-1]), []byte(tornID), 1)
	torn = torn[:len(torn)/2]
	f, err := os.OpenFile(files[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(torn)
	f.Close()

	g.start(t)
	send(5)
	waitSettled(t, g.admin, 5)
	if n := metricValue(t, metrics(t, g.admin), "cairn_capture_torn_lines_total"); n != 1 {
		t.Errorf("cairn_capture_torn_lines_total = %v after the restart; want 1 (sealed on reopen)", n)
	}
	got, tornLines := diskRecords(t, g.dataDir)
	if tornLines != 1 || len(got) != len(ids) {
		t.Errorf("files hold %d whole records and %d torn lines; want %d and 1", len(got), tornLines, len(ids))
	}
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("request %s has %d records; want 1", id, got[id])
		}
		out, err := exec.Command(cairnBin, "requests", "show", id, "--data-dir", g.dataDir).CombinedOutput()
		if err != nil || !strings.Contains(string(out), id) {
			t.Errorf("cairn requests show %s after the torn line: %v\n%.300s", id, err, out)
		}
		r, err := http.Get(g.admin + "/admin/requests/" + id)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 200 {
			t.Errorf("GET /admin/requests/%s = %d after the torn line; want 200", id, r.StatusCode)
		}
	}
	out, err := exec.Command(cairnBin, "requests", "show", tornID, "--data-dir", g.dataDir).CombinedOutput()
	if err == nil || !strings.Contains(strings.ToLower(string(out)), "not found") {
		t.Errorf("cairn requests show <torn request> = %v\n%.300s; want not found", err, out)
	}
}
