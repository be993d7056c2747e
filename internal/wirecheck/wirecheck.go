// Package wirecheck bounds what a request may carry on the wire: every id
// and free-text field, and the number of entries of every list and map, of
// every request the servers (Operator, AgentRegistry, Peer) and the agents
// (HostAgent) serve. The gRPC interceptors here refuse an oversize request
// as InvalidArgument before any handler runs, with an error that quotes at
// most QuoteBytes of the offending value and says how long it was, so a
// 100 KB id never comes back in a 100 KB error. gRPC's own limit on a
// message (4 MB by default) still applies first.
package wirecheck

import (
	"fmt"
	"github.com/drplane/drplane/internal/names"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

const (
	// MaxID is the longest id or name, in bytes: request ids, execution
	// and step ids, host ids, sites, services, syncs, snapshots, hooks,
	// plan kinds and map keys. It is names.MaxIDLen, the longest step id
	// the agent's journal takes: a step id is built from a service and a
	// host name (each at most 63 bytes), so a shorter bound here would
	// refuse, mid-failover, a step the config accepted.
	MaxID = names.MaxIDLen
	// MaxText is the longest free-text field (reasons, messages,
	// addresses, step arguments), in bytes.
	MaxText = 4096
	// MaxEntries is the most entries a list or a map may have.
	MaxEntries = 256
	// QuoteBytes is the most of a refused value an error quotes.
	QuoteBytes = 64
)

// idFields are the string fields, besides "id" and "*_id", that hold an id
// or a name; every other string field is free text.
var idFields = map[protoreflect.Name]bool{
	"site": true, "active_site": true, "leader_site": true, "kind": true, "plan": true,
	"to": true, "from": true, "cleanup_of": true, "action": true, "target": true, "name": true,
	"driver": true, "sync": true, "depends_on": true, "syncs": true, "snapshots": true,
	"hooks": true, "voters": true,
}

// Quote quotes at most the first QuoteBytes of v (cut at a character
// boundary) and, when it cut, says how long v was.
func Quote(v string) string {
	if len(v) <= QuoteBytes {
		return strconv.Quote(v)
	}
	cut := QuoteBytes
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(v[:cut]), len(v))
}

// ID checks one id or name: at most MaxID bytes.
func ID(field, v string) error {
	return check(field, v, MaxID, "an id")
}

// Text checks one free-text value: at most MaxText bytes.
func Text(field, v string) error {
	return check(field, v, MaxText, "free text")
}

// Entries checks the number of entries of a list or a map.
func Entries(field string, n int) error {
	if n > MaxEntries {
		return fmt.Errorf("%s has %d entries; at most %d are allowed", field, n, MaxEntries)
	}
	return nil
}

func check(field, v string, limit int, what string) error {
	if len(v) > limit {
		// Quote names the length of a value it cuts short.
		return fmt.Errorf("%s %s is too long; %s is at most %d bytes", field, Quote(v), what, limit)
	}
	return nil
}

// Request checks every field of m, nested messages included, and returns
// the first that is too long or has too many entries, named by its path
// (agent.services[2].name).
func Request(m proto.Message) error {
	if m == nil {
		return nil
	}
	return message("", m.ProtoReflect())
}

func message(prefix string, m protoreflect.Message) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		path := string(fd.Name())
		if prefix != "" {
			path = prefix + "." + path
		}
		err = field(path, fd, v)
		return err == nil
	})
	return err
}

func field(path string, fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch {
	case fd.IsList():
		l := v.List()
		if err := Entries(path, l.Len()); err != nil {
			return err
		}
		for i := range l.Len() {
			if err := value(fmt.Sprintf("%s[%d]", path, i), fd, l.Get(i)); err != nil {
				return err
			}
		}
		return nil
	case fd.IsMap():
		return mapField(path, fd, v.Map())
	}
	return value(path, fd, v)
}

func mapField(path string, fd protoreflect.FieldDescriptor, m protoreflect.Map) error {
	if err := Entries(path, m.Len()); err != nil {
		return err
	}
	var err error
	m.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		key := k.String()
		if err = ID(path+" key", key); err != nil {
			return false
		}
		err = value(fmt.Sprintf("%s[%s]", path, Quote(key)), fd.MapValue(), v)
		return err == nil
	})
	return err
}

// value checks one string or nested message; other kinds (numbers, bytes,
// enums) need no bound beyond the message's.
func value(path string, fd protoreflect.FieldDescriptor, v protoreflect.Value) error {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if isID(fd) {
			return ID(path, v.String())
		}
		return Text(path, v.String())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return message(path, v.Message())
	}
	return nil
}

func isID(fd protoreflect.FieldDescriptor) bool {
	name := fd.Name()
	if fd.ContainingMessage().IsMapEntry() {
		return false // a map's value is free text; its key is checked apart
	}
	n := string(name)
	return n == "id" || len(n) > 3 && n[len(n)-3:] == "_id" || idFields[name]
}
