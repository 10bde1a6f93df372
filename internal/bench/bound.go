package bench

import (
	"context"
	"errors"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cn-relay-manager/cn-relay-manager/internal/apiclient"
)

type attempt struct {
	Outcome  string `json:"outcome"`
	Evidence []struct {
		Target string `json:"target"`
		Method string `json:"method"`
		Path   string `json:"path"`
		Status int    `json:"status"`
	} `json:"evidence"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

// deriveBound reads the attempts of a sample of items and computes the bound.
func deriveBound(ctx context.Context, cl *apiclient.Client, batchID string, o Options) (Bound, error) {
	var ids []string
	for page := 1; len(ids) < o.Items; page++ {
		var p struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		q := url.Values{"page_size": {"1000"}, "page": {strconv.Itoa(page)}}
		if _, err := cl.Do(ctx, "GET", "/api/v1/batches/"+batchID+"/items", q, nil, &p); err != nil {
			return Bound{}, err
		}
		if len(p.Items) == 0 {
			break
		}
		for _, it := range p.Items {
			ids = append(ids, it.ID)
		}
	}
	k := min(o.Sample, len(ids))
	if k < 1 {
		return Bound{}, errors.New("the batch has no items")
	}
	lh, lu := o.HostLatency.Seconds(), o.UpstreamLatency.Seconds()
	const backoff = 0.2 // the host client's first retry delay (at least)
	var b Bound
	var pre, post, upSlot, hostCalls, upCalls, nested, faults, waits, measured, waited float64
	waitedN := 0
	for j := 0; j < k; j++ {
		id := ids[j*len(ids)/k]
		var d struct {
			Attempts []attempt `json:"attempts"`
		}
		if _, err := cl.Do(ctx, "GET", "/api/v1/batches/"+batchID+"/items/"+id, nil, nil, &d); err != nil {
			return b, err
		}
		sort.SliceStable(d.Attempts, func(a, c int) bool { return d.Attempts[a].StartedAt.Before(d.Attempts[c].StartedAt) })
		firstWait, lastWait := -1, -1
		for i, a := range d.Attempts {
			if a.Outcome == "waiting" {
				if firstWait < 0 {
					firstWait = i
				}
				lastWait = i
			}
		}
		for i, a := range d.Attempts {
			slot := 0.0
			for _, x := range a.Evidence {
				switch x.Target {
				case "upstream":
					slot += lu
					upCalls++
					upSlot += lu
				default: // host, gateway
					slot += lh
					hostCalls++
					if x.Status == 200 && (strings.HasSuffix(x.Path, "/test") || strings.HasSuffix(x.Path, "/chat/completions")) {
						slot += lu
						nested++
					}
					if x.Target == "host" && (x.Status == 0 || x.Status == 500 || x.Status == 502 || x.Status == 503 || x.Status == 504) {
						slot += backoff
						faults++
					}
				}
			}
			measured += a.FinishedAt.Sub(a.StartedAt).Seconds()
			if a.Outcome == "waiting" {
				waits++
			}
			switch {
			case firstWait < 0 || i <= firstWait:
				pre += slot
			case i > lastWait:
				post += slot
			}
		}
		if firstWait >= 0 && len(d.Attempts) > 0 {
			waited += d.Attempts[len(d.Attempts)-1].FinishedAt.Sub(d.Attempts[firstWait].FinishedAt).Seconds()
			waitedN++
		}
	}
	n, c, kk := float64(o.Items), float64(o.slots()), float64(k)
	b.SampledItems, b.Slots = k, o.slots()
	b.HostCallsPerIt, b.UpCallsPerItem, b.NestedPerItem, b.FaultsPerItem = hostCalls/kk, upCalls/kk, nested/kk, faults/kk
	b.SlotPreS, b.SlotPostS, b.WaitsPerItem, b.MeasuredSlotS = pre/kk, post/kk, waits/kk, measured/kk
	s := b.SlotPreS + b.SlotPostS
	b.CapacityTermS = n * s / c
	b.SlotUpstreamS = upSlot / kk
	if o.HostCap > 0 {
		b.CapTermS = n * s / float64(o.HostCap)
	}
	if o.UpstreamCap > 0 {
		b.CapTermS = max(b.CapTermS, n*b.SlotUpstreamS/float64(o.UpstreamCap))
	}
	if waitedN > 0 && o.Warmup > 0 {
		b.WaitS, b.GranularityS = o.Warmup.Seconds(), 1
		b.MeasuredWaitedS = waited / float64(waitedN)
		// In a pooled group the gateway routes a call to any account of the group, so an
		// account's warm-up may have passed before its own item gets there: only the
		// fraction f of items that waited at all is held up by W.
		b.WaitedFraction = float64(waitedN) / kk
		b.LatencyTermS = b.WaitedFraction*n*b.SlotPreS/c + b.WaitS + b.GranularityS + b.SlotPostS
		b.Formula = "max(N*S/C, f*N*S_pre/C + W + g + S_post, N*S/H, N*S_up/U)"
	} else {
		b.LatencyTermS = s
		b.Formula = "max(N*S/C, S, N*S/H, N*S_up/U)"
	}
	return b, nil
}

func parseScheduleSeconds(s string) ([]float64, error) {
	var out []float64
	for _, p := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(p))
		if err != nil {
			return nil, err
		}
		out = append(out, math.Max(1, d.Seconds()))
	}
	return out, nil
}
