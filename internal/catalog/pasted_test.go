package catalog

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// pastedLine is one line of testdata/pasted.jsonl: what an operator pasted and the answer
// the product must give. Optional expectations are pointers (absent = not checked).
type pastedLine struct {
	Rule   string   `json:"rule"`
	URL    string   `json:"url"`
	Key    string   `json:"key"`
	Hint   string   `json:"hint"`
	Models []string `json:"models"`

	// Refuse: the line must be refused with a reason containing these words.
	Refuse string `json:"refuse"`

	Provider  string   `json:"provider"`
	By        *string  `json:"by"`
	Suggested *string  `json:"suggested"`
	OpenAI    *string  `json:"openai"`
	Anthropic *string  `json:"anthropic"`
	Region    *string  `json:"region"`
	Plan      *string  `json:"plan"`
	Resolved  []string `json:"resolved"` // per model: the id, or "!" + words of the refusal note
}

// Outcomes of a scored line.
const (
	scoreCorrect = "correct" // the expected answer, or the expected refusal with its reason
	scoreRefused = "refused" // refused where an answer (or another reason) was expected
	scoreWrong   = "wrong"   // a confident answer that differs from the expected one
)

func loadPasted(t *testing.T) []pastedLine {
	t.Helper()
	f, err := os.Open("testdata/pasted.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []pastedLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if n == 1 {
			continue // {"about": ...}
		}
		var l pastedLine
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("pasted.jsonl line %d: %v", n, err)
		}
		if l.Refuse == "" && (l.OpenAI == nil || l.Anthropic == nil || l.Provider == "") {
			t.Fatalf("pasted.jsonl line %d: an answered line needs provider, openai and anthropic", n)
		}
		if l.Resolved != nil && len(l.Resolved) != len(l.Models) {
			t.Fatalf("pasted.jsonl line %d: %d models, %d resolutions", n, len(l.Models), len(l.Resolved))
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// scorePasted interprets one line the way the import does (normalise, detect, resolve the
// models against the catalog of the base's region and plan) and compares the outcome.
func scorePasted(c *Catalog, l pastedLine) (string, []string) {
	it := c.Interpret(Input{BaseURL: l.URL, APIKey: l.Key, Hint: l.Hint})
	var wrong, refused []string
	check := func(what string, want *string, got string) {
		if want != nil && *want != got {
			wrong = append(wrong, fmt.Sprintf("%s %q, want %q", what, got, *want))
		}
	}
	if l.Refuse != "" {
		if l.Provider != "" {
			check("provider", &l.Provider, it.Detection.ProviderID)
			check("decided by", l.By, it.Detection.By)
		}
		switch {
		case it.Refusal == "":
			wrong = append(wrong, fmt.Sprintf("answered %q where a refusal was expected", it.URL.BaseURL))
		case !strings.Contains(it.Refusal, l.Refuse):
			refused = append(refused, fmt.Sprintf("refused with %q, want a reason containing %q", it.Refusal, l.Refuse))
		}
		return verdict(wrong, refused)
	}
	if it.Refusal != "" {
		return scoreRefused, []string{"refused: " + it.Refusal}
	}
	check("provider", &l.Provider, it.Detection.ProviderID)
	check("decided by", l.By, it.Detection.By)
	check("suggested", l.Suggested, it.Detection.Suggested)
	check("OpenAI base", l.OpenAI, it.URL.BaseURL)
	check("Anthropic base", l.Anthropic, it.URL.AnthropicBase)
	if it.Scope != nil {
		check("region", l.Region, it.Scope.Region)
		check("plan", l.Plan, it.Scope.Plan)
	} else {
		check("region", l.Region, "")
		check("plan", l.Plan, "")
	}
	if l.Resolved != nil {
		res := c.ResolveModelsAt(it.Detection.ProviderID, it.Scope, l.Models, nil)
		for i, want := range l.Resolved {
			got := res.Corrections[i]
			words, refuse := strings.CutPrefix(want, "!")
			switch {
			case refuse && got.Resolved != "":
				wrong = append(wrong, fmt.Sprintf("model %q resolved to %q, want a refusal", l.Models[i], got.Resolved))
			case refuse && !strings.Contains(got.Note, words):
				refused = append(refused, fmt.Sprintf("model %q refused with %q, want a note containing %q", l.Models[i], got.Note, words))
			case !refuse && got.Resolved == "":
				refused = append(refused, fmt.Sprintf("model %q refused (%s), want %q", l.Models[i], got.Method, want))
			case !refuse && got.Resolved != want:
				wrong = append(wrong, fmt.Sprintf("model %q resolved to %q, want %q", l.Models[i], got.Resolved, want))
			}
		}
	}
	return verdict(wrong, refused)
}

func verdict(wrong, refused []string) (string, []string) {
	switch {
	case len(wrong) > 0:
		return scoreWrong, append(wrong, refused...)
	case len(refused) > 0:
		return scoreRefused, refused
	}
	return scoreCorrect, nil
}

// TestPastedCorpus scores the catalog on lines pasted the way operators paste them (from
// provider consoles, chat messages and relay dashboards). A confident wrong answer is the
// worst outcome: a wrong base or provider is written to the host and fails later, far from
// its cause. So the test fails on any wrong line, and when fewer than 97 % are correct.
func TestPastedCorpus(t *testing.T) {
	c := Default()
	lines := loadPasted(t)
	if len(lines) < 150 {
		t.Fatalf("the corpus has %d lines; it must keep at least 150", len(lines))
	}
	counts := map[string]int{}
	expectedRefusals := 0
	for i, l := range lines {
		outcome, why := scorePasted(c, l)
		counts[outcome]++
		if outcome == scoreCorrect && l.Refuse != "" {
			expectedRefusals++
		}
		if outcome != scoreCorrect {
			report := t.Logf
			if outcome == scoreWrong {
				report = t.Errorf
			}
			report("line %d (%s) %s: %s %s", i+2, l.Rule, outcome, l.URL, strings.Join(why, "; "))
		}
	}
	total := len(lines)
	t.Logf("correct %d / refused %d / wrong %d of %d lines (%.1f %% correct; %d of the correct ones are expected refusals)",
		counts[scoreCorrect], counts[scoreRefused], counts[scoreWrong], total,
		100*float64(counts[scoreCorrect])/float64(total), expectedRefusals)
	fmt.Printf("pasted corpus: correct %d / refused %d / wrong %d\n", counts[scoreCorrect], counts[scoreRefused], counts[scoreWrong])
	if counts[scoreWrong] > 0 {
		t.Errorf("%d confident wrong answers", counts[scoreWrong])
	}
	if counts[scoreCorrect]*100 < 97*total {
		t.Errorf("%d of %d correct is below 97 %%", counts[scoreCorrect], total)
	}
}

// TestPastedCorpusCoversEveryProvider keeps the corpus honest as the catalog grows: every
// provider and every surface appears in at least one answered line.
func TestPastedCorpusCoversEveryProvider(t *testing.T) {
	c := Default()
	seen := map[string]bool{}
	for _, l := range loadPasted(t) {
		it := c.Interpret(Input{BaseURL: l.URL, APIKey: l.Key, Hint: l.Hint})
		if it.Refusal == "" {
			seen[it.Detection.ProviderID] = true
			seen[it.URL.ProviderID+"/"+it.URL.Surface] = true
		}
	}
	for _, p := range c.Providers() {
		if !seen[p.ID] {
			t.Errorf("no answered line for provider %s", p.ID)
		}
		for _, s := range p.Surfaces {
			if !seen[p.ID+"/"+s.ID] {
				t.Errorf("no answered line for surface %s/%s", p.ID, s.ID)
			}
		}
	}
}
