package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/cairnhq/cairn/capture"
)

// Issue 12.12: `cairn requests show` resolved a gateway ID to the record of
// a client that sent it as its x-request-id. Gateway IDs resolve first; a
// client ID several records carry lists them all.
func TestRequestsShowNamespaces(t *testing.T) {
	dir := t.TempDir()
	w, err := capture.NewWriter(capture.WriterOptions{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	gw := func(i int) string { return fmt.Sprintf("req_%026d", i) }
	for i, client := range []string{"", gw(0), "order-42", "order-42"} {
		w.Enqueue(&capture.Record{GatewayRequestID: gw(i), ClientRequestID: client, Endpoint: "chat.completions",
			ReceivedAt: time.Date(2026, 12, 1, 10, 0, i, 0, time.UTC), Status: 200, Outcome: capture.OutcomeOK})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	show := func(id string) []byte {
		t.Helper()
		var out bytes.Buffer
		if err := cmdRequests([]string{"show", id, "--data-dir", dir}, &out); err != nil {
			t.Fatalf("requests show %s: %v", id, err)
		}
		return out.Bytes()
	}
	var one capture.Record
	if err := json.Unmarshal(show(gw(0)), &one); err != nil || one.GatewayRequestID != gw(0) {
		t.Errorf("requests show %s = %s (%v); want its own record", gw(0), one.GatewayRequestID, err)
	}
	var list struct {
		Object string           `json:"object"`
		IDKind string           `json:"id_kind"`
		Data   []capture.Record `json:"data"`
	}
	if err := json.Unmarshal(show("order-42"), &list); err != nil || list.Object != "list" || list.IDKind != "client" ||
		len(list.Data) != 2 || list.Data[0].GatewayRequestID != gw(3) || list.Data[1].GatewayRequestID != gw(2) {
		t.Errorf("requests show order-42 = %+v (%v); want a list of both, newest first", list, err)
	}
}
