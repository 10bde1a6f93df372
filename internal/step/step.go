// Package step is the step table of an item: the steps every imported key goes through,
// in order. A step's name is stored on the item as the step it is at next, and it is the
// asynq task type that carries the step, so the pipeline (which binds each name to the
// function that runs it), the queue and the batch service (which starts items at First)
// all take the names from this one table and cannot drift apart.
package step

import (
	"fmt"
	"strconv"
	"strings"
)

// The item steps.
const (
	// Import probes the upstream, corrects model names and creates the host group and account.
	Import = "import"
	// AccountProbe confirms the account on the host inside the confirmation window.
	AccountProbe = "account-probe"
	// AccessClosure gives the managed end user access and proves it with a real call.
	AccessClosure = "access-closure"
)

// Step is one row of the table.
type Step struct {
	// Name is the step's name on the item and the task type of the queue.
	Name string
	// Doc says what the step does, for the generated documentation and logs.
	Doc string
}

// Table lists the item steps in the order an item goes through them.
var Table = []Step{
	{Name: Import, Doc: "probe the upstream, correct model names, create the host group and account"},
	{Name: AccountProbe, Doc: "confirm the account on the host inside the confirmation window"},
	{Name: AccessClosure, Doc: "give the managed end user access and prove it with an end-user call"},
}

// First is the step a new (or retried) item starts at.
const First = Import

// Names returns the step names in order.
func Names() []string {
	out := make([]string, len(Table))
	for i, s := range Table {
		out[i] = s.Name
	}
	return out
}

// Known reports whether name is an item step.
func Known(name string) bool {
	for _, s := range Table {
		if s.Name == name {
			return true
		}
	}
	return false
}

// TaskID names one execution of a step of an item (step, item, sequence). It is the
// queue's task ID (enqueuing the same step twice collapses into one task) and the name a
// step waiting for a concurrency slot is woken by.
func TaskID(name, itemID string, seq int) string {
	return fmt.Sprintf("%s:%s:%d", name, itemID, seq)
}

// ParseTaskID splits a TaskID; ok is false for anything else.
func ParseTaskID(id string) (name, itemID string, seq int, ok bool) {
	parts := strings.Split(id, ":")
	if len(parts) != 3 || !Known(parts[0]) || parts[1] == "" {
		return "", "", 0, false
	}
	seq, err := strconv.Atoi(parts[2])
	if err != nil || seq < 0 {
		return "", "", 0, false
	}
	return parts[0], parts[1], seq, true
}
