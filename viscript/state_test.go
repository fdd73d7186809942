package viscript

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/skywire-mesh/skywire/appsignal"
	"github.com/skywire-mesh/skywire/viscript/control"
)

func helloFor(id uint64, token string) appsignal.Hello {
	return appsignal.Hello{Version: appsignal.ProtocolVersion, AppID: id, Name: "x", Token: token}
}

func TestParseState(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
		nextID  uint64
	}{
		{"empty table", `{"version":1,"next_id":1,"apps":[]}`, false, 1},
		{"next_id raised above IDs", `{"version":1,"next_id":2,"apps":[{"id":7,"name":"a","state":"exited"}]}`, false, 8},
		{"zero next_id", `{"version":1,"apps":[]}`, false, 1},
		{"wrong version", `{"version":2,"next_id":1}`, true, 0},
		{"not json", `xx`, true, 0},
		{"id 0", `{"version":1,"apps":[{"id":0,"name":"a","state":"exited"}]}`, true, 0},
		{"dup id", `{"version":1,"apps":[{"id":1,"name":"a","state":"exited"},{"id":1,"name":"a","state":"exited"}]}`, true, 0},
		{"bad state", `{"version":1,"apps":[{"id":1,"name":"a","state":"zombie"}]}`, true, 0},
		{"bad name", `{"version":1,"apps":[{"id":1,"name":"../x","state":"exited"}]}`, true, 0},
		{"negative pid", `{"version":1,"apps":[{"id":1,"name":"a","state":"exited","pid":-1}]}`, true, 0},
	}
	for _, tt := range tests {
		st, err := parseState([]byte(tt.in))
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: err %v", tt.name, err)
			continue
		}
		if err == nil && st.NextID != tt.nextID {
			t.Errorf("%s: next_id %d, want %d", tt.name, st.NextID, tt.nextID)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), stateName)
	st := stateFile{Version: stateVersion, NextID: 9, Apps: []appRecord{
		{ID: 2, Name: "b", Args: []string{"-x"}, Pid: 10, StartTicks: 5, State: control.StateExited, ExitCode: -1, ExitInfo: "killed by SIGKILL"},
		{ID: 8, Name: "a", Daemon: true, Owner: "o", Token: "t", State: control.StateRunning, Restarts: 3, NoRestart: true},
	}}
	if err := writeState(path, st); err != nil {
		t.Fatal(err)
	}
	got, err := loadState(path, func(string, ...any) { t.Error("unexpected warning") })
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, st)
	}
}

func FuzzParseState(f *testing.F) {
	good, _ := json.Marshal(stateFile{Version: stateVersion, NextID: 3, Apps: []appRecord{
		{ID: 1, Name: "a", State: control.StateRunning, Pid: 5, StartTicks: 7, Token: "t"},
		{ID: 2, Name: "b", State: control.StateBackoff},
	}})
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"next_id":18446744073709551615,"apps":[{"id":18446744073709551615,"name":"a","state":"exited"}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"version":1,"apps":[null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseState(data)
		if err != nil {
			return
		}
		// A valid table re-encodes to an equally valid one.
		again, err := json.Marshal(st)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		st2, err := parseState(again)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		for _, r := range st2.Apps {
			if r.ID == 0 || (r.ID >= st2.NextID && st2.NextID != 0) {
				t.Fatalf("ID %d not below next_id %d", r.ID, st2.NextID)
			}
		}
	})
}
