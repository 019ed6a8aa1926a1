package daemon

import (
	"sync"
	"time"

	"github.com/moby/moby/api/types/events"
)

// Event is what /events streams: the typed message plus the legacy
// status/id/from fields old clients still read.
type Event struct {
	events.Message
	Status string `json:"status,omitempty"`
	ID     string `json:"id,omitempty"`
	From   string `json:"from,omitempty"`
}

// Events fans daemon events out to subscribers and keeps the most recent
// ones so that `events --since` can replay them.
type Events struct {
	mu      sync.Mutex
	history []Event
	subs    map[chan Event]struct{}
}

const eventHistory = 1024

// NewEvents returns an empty exchange.
func NewEvents() *Events { return &Events{subs: map[chan Event]struct{}{}} }

// Publish records ev (stamping its time) and hands it to every subscriber.
// A subscriber too slow to keep up with 256 pending events misses events
// rather than stalling the daemon.
func (e *Events) Publish(typ events.Type, action events.Action, id string, attrs map[string]string) {
	now := time.Now()
	ev := Event{Message: events.Message{
		Type: typ, Action: action,
		Actor: events.Actor{ID: id, Attributes: attrs},
		Scope: "local", Time: now.Unix(), TimeNano: now.UnixNano(),
	}}
	if typ == events.ContainerEventType || typ == events.ImageEventType {
		ev.Status = string(action)
		ev.ID = id
		if typ == events.ContainerEventType {
			ev.From = attrs["image"]
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.history = append(e.history, ev)
	if len(e.history) > eventHistory {
		e.history = append([]Event(nil), e.history[len(e.history)-eventHistory:]...)
	}
	for ch := range e.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// Subscribe returns the recorded events at or after since (zero: none) and
// a channel of new ones; call the cancel func when done.
func (e *Events) Subscribe(since time.Time) ([]Event, <-chan Event, func()) {
	ch := make(chan Event, 256)
	e.mu.Lock()
	var past []Event
	if !since.IsZero() {
		for _, ev := range e.history {
			if ev.TimeNano >= since.UnixNano() {
				past = append(past, ev)
			}
		}
	}
	e.subs[ch] = struct{}{}
	e.mu.Unlock()
	return past, ch, func() {
		e.mu.Lock()
		delete(e.subs, ch)
		e.mu.Unlock()
	}
}

// Listeners is the number of live subscribers (for /info).
func (e *Events) Listeners() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.subs)
}
