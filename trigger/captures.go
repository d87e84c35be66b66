package trigger

import (
	"encoding/json"
	"errors"
	"time"
)

// Spec asks for one triggered capture: the streams that KFL selects over
// [T − Lookback, T + Duration], T being when the capture starts, sealed into
// one repository trigger_<slug>_<unixSeconds>.tar.gz that goes through the
// normal sinks.
type Spec struct {
	KFL      string
	Duration time.Duration
	Lookback time.Duration
	// Name gives the archive's slug (sanitised by the engine); Labels are
	// free-form and end up in content.json.
	Name   string
	Labels map[string]string
	// Rule is the trigger rule that fired, "" for API captures.
	Rule string
	// Alert is the alert that fired the rule, nil for API captures.
	Alert *Alert
}

// Alert is a security alert as kflcap understands it, whatever the sender
// (Falco's http_output, Falcosidekick, Falco Talon).
type Alert struct {
	UUID         string            `json:"uuid,omitempty"`
	Time         time.Time         `json:"time"`
	Rule         string            `json:"rule"`
	Priority     string            `json:"priority"`
	Source       string            `json:"source"`
	Hostname     string            `json:"hostname"`
	Output       string            `json:"output"`
	Tags         []string          `json:"tags"`
	OutputFields map[string]string `json:"output_fields"` // values as strings; numbers converted
	// Raw is the JSON document as received.
	Raw json.RawMessage `json:"raw"`
	// Format says which sender's format it was: "falco", "falcosidekick", "talon".
	Format string `json:"format"`
}

// State of a capture.
type State string

const (
	StateRunning State = "running" // selecting streams
	StateSealing State = "sealing" // the window closed; writing the repository
	StateSealed  State = "sealed"  // sealed, waiting for or done with delivery
	StateEmpty   State = "empty"   // the window closed with no stream selected: no repository
	StateFailed  State = "failed"
)

// Status describes a capture.
type Status struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	KFL        string            `json:"kfl"`
	Rule       string            `json:"rule,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	State      State             `json:"state"`
	Started    time.Time         `json:"started"`
	From       time.Time         `json:"from"` // Started − Lookback (or the oldest packet kept)
	Until      time.Time         `json:"until"`
	Streams    int               `json:"streams"`
	Bytes      int64             `json:"bytes"`
	Repository string            `json:"repository,omitempty"` // archive name once sealed
	URL        string            `json:"s3_url,omitempty"`     // once delivered
	Error      string            `json:"error,omitempty"`
}

// Errors of Captures.Start.
var (
	// ErrTooMany: the concurrent-capture cap or the trigger byte budget is
	// reached.
	ErrTooMany = errors.New("too many triggered captures")
	// ErrNotFound: no capture has that id.
	ErrNotFound = errors.New("no such capture")
)

// Captures is the capture engine the API and the alert intake drive. The
// agent implements it. Start returns a *kfl.Error (with position) for an
// invalid query. Implementations are safe for concurrent use.
type Captures interface {
	Start(spec Spec) (Status, error)
	List() []Status
	Get(id string) (Status, error)
	// Stop ends a running capture early and seals what it has.
	Stop(id string) (Status, error)
}
