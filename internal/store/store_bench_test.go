package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
)

// Benchmarks of the store's hot paths (SQLite). Run with
//
//	go test ./internal/store -run '^$' -bench . -benchtime 200x
//
// BenchmarkCompleteStep/terminal shows the batch-status refresh that runs when an
// item ends: it counts every item of the batch, so its cost grows with the batch size.

func benchStore(b testing.TB) *Store {
	b.Helper()
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	return s
}

func benchItems(n int, prefix string) []*Item {
	items := make([]*Item, n)
	for i := range items {
		items[i] = &Item{Name: prefix + strconv.Itoa(i), BaseURL: "https://api.deepseek.com", APIKeyEnc: "v1:sealed-key-placeholder",
			KeyMasked: "sk-ben...0001", KeyFingerprint: prefix + strconv.Itoa(i), RequestedModels: []string{"deepseek-flash"}}
	}
	return items
}

func benchBatch(b testing.TB, s *Store, n int) (*Batch, []*Item) {
	b.Helper()
	ctx := context.Background()
	h := &Host{Name: "h-" + NewID(), AdminURL: "http://x", PublicURL: "http://x", AuthKind: "api_key"}
	if err := s.CreateHost(ctx, h); err != nil {
		b.Fatal(err)
	}
	bt := &Batch{HostID: h.ID, Mode: "self_service"}
	items := benchItems(n, "i")
	if err := s.CreateBatch(ctx, bt, items); err != nil {
		b.Fatal(err)
	}
	return bt, items
}

// benchAttempt is an attempt with the evidence of a typical import step.
func benchAttempt(step string, seq int) *Attempt {
	ev := make([]Exchange, 8)
	for i := range ev {
		ev[i] = Exchange{Target: "upstream", Method: "POST", Path: "/v1/chat/completions", Status: 200, LatencyMS: 50,
			Preview: `{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"}}]}`}
	}
	return &Attempt{Step: step, Seq: seq, Number: 1, Outcome: OutcomeOK, Message: "group 12 and account 34 ready on the host; confirming", Evidence: ev}
}

// BenchmarkCreateBatch is the database part of accepting a batch.
func BenchmarkCreateBatch(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			s := benchStore(b)
			ctx := context.Background()
			h := &Host{Name: "h", AdminURL: "http://x", PublicURL: "http://x", AuthKind: "api_key"}
			if err := s.CreateHost(ctx, h); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				items := benchItems(n, fmt.Sprintf("b%d-", i))
				b.StartTimer()
				if err := s.CreateBatch(ctx, &Batch{HostID: h.ID, Mode: "none"}, items); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/item")
		})
	}
}

// BenchmarkCompleteStep is the write every pipeline step ends with. "running" keeps the
// item running (no batch refresh); "terminal" ends it, which refreshes the batch status.
func BenchmarkCompleteStep(b *testing.B) {
	for _, kind := range []string{"running", "terminal"} {
		for _, n := range []int{100, 1000, 10000} {
			b.Run(fmt.Sprintf("%s/batch=%d", kind, n), func(b *testing.B) {
				s := benchStore(b)
				_, items := benchBatch(b, s, n)
				ctx := context.Background()
				status := ItemConfirming
				if kind == "terminal" {
					status = ItemReady
				}
				seqs := make([]int, n)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					j := i % n
					it := items[j]
					seq := seqs[j]
					if seq == 0 { // the first completion of an item always refreshes; skip it
						b.StopTimer()
						it.Seq, it.Status, it.Step = 1, ItemConfirming, "account-probe"
						if err := s.CompleteStep(ctx, it, 0, benchAttempt("import", 0)); err != nil {
							b.Fatal(err)
						}
						seq = 1
						b.StartTimer()
					}
					it.Seq, it.Status = seq+1, status
					if err := s.CompleteStep(ctx, it, seq, benchAttempt("account-probe", seq)); err != nil {
						b.Fatal(err)
					}
					seqs[j] = seq + 1
				}
			})
		}
	}
}

// BenchmarkCompleteStepParallel runs the step write from 10 goroutines (the default
// worker concurrency) on distinct items of one batch: SQLite serialises the writers.
func BenchmarkCompleteStepParallel(b *testing.B) {
	s := benchStore(b)
	_, items := benchBatch(b, s, 1000)
	ctx := context.Background()
	next := make(chan int, len(items))
	for i := range items {
		next <- i
	}
	b.SetParallelism(5) // 5 × GOMAXPROCS(2) = 10 goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		j := <-next
		it := items[j]
		seq := 0
		for pb.Next() {
			it.Seq, it.Status, it.Step = seq+1, ItemConfirming, "account-probe"
			if err := s.CompleteStep(ctx, it, seq, benchAttempt("account-probe", seq)); err != nil {
				b.Error(err)
				return
			}
			seq++
		}
	})
}

// BenchmarkGetItem is the read every step starts with.
func BenchmarkGetItem(b *testing.B) {
	s := benchStore(b)
	_, items := benchBatch(b, s, 1000)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.GetItem(ctx, items[i%len(items)].ID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatchDetail is the database part of GET /api/v1/batches/{id} (status counts)
// and of one page of /items on a 10 000-item batch.
func BenchmarkBatchDetail(b *testing.B) {
	s := benchStore(b)
	bt, _ := benchBatch(b, s, 10000)
	ctx := context.Background()
	b.Run("status-counts", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := s.StatusCounts(ctx, bt.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("items-page-100", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, _, err := s.ListItems(ctx, bt.ID, 100, (i%100)*100); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchStoreDSN opens a migrated SQLite store like Open does, with extra DSN parameters
// (to try pragmas without changing Open).
func benchStoreDSN(b testing.TB, extra string, maxConns int) *Store {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.db")
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)&_txlock=immediate" + extra
	sqldb, err := openSQLiteUTC(dsn)
	if err != nil {
		b.Fatal(err)
	}
	sqldb.SetMaxOpenConns(maxConns)
	s := &Store{DB: bun.NewDB(sqldb, sqlitedialect.New()), now: utcNow, dialect: DialectSQLite}
	b.Cleanup(func() { s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkStepCycle is the database work of one pipeline step as the worker does it —
// read the item, its batch and its host, then CompleteStep — from 10 goroutines spread
// over the 1 000 items of a batch whose items already hold 3 attempts with evidence (as
// after a 1 000-item run). Every write by one pooled
// connection makes the next read transaction on every other connection drop its whole
// page cache (WAL change counter); with modernc SQLite each dropped page is a free() and
// each refetched page a malloc() of a page-sized block, which modernc's allocator serves
// with mmap/munmap — syscalls and TLB shootdowns. Writers that find the write lock taken
// (BEGIN IMMEDIATE) wait in SQLite's busy handler, which sleeps 1, 2, 5, 10 … 100 ms
// between tries instead of being woken. The variants: "default" is Open's setup (8
// connections); "cache64k" keeps each connection's cache inside SQLite's bulk page
// allocation; "mmap" reads database pages through a memory mapping; "1conn" is a pool
// of one connection (no cross-connection cache invalidation, and waiters queue in
// database/sql, woken at once, instead of sleeping in the busy handler).
func BenchmarkStepCycle(b *testing.B) {
	for _, v := range []struct {
		name, extra string
		conns       int
	}{
		{"default", "", 8},
		{"cache64k", "&_pragma=cache_size(-64)", 8},
		{"mmap", "&_pragma=mmap_size(268435456)", 8},
		{"1conn", "", 1},
	} {
		b.Run(v.name, func(b *testing.B) {
			s := benchStoreDSN(b, v.extra, v.conns)
			_, items := benchBatch(b, s, 1000)
			ctx := context.Background()
			seqs := make([]int, len(items))
			for i, it := range items {
				for seq := 0; seq < 3; seq++ {
					it.Seq, it.Status, it.Step = seq+1, ItemConfirming, "account-probe"
					if err := s.CompleteStep(ctx, it, seq, benchAttempt("import", seq)); err != nil {
						b.Fatal(err)
					}
				}
				seqs[i] = 3
			}
			const workers = 10
			next := make(chan int, workers)
			for g := 0; g < workers; g++ {
				next <- g
			}
			b.SetParallelism(5) // 5 × GOMAXPROCS(2) = 10 goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				g := <-next
				j := g
				for pb.Next() {
					j += workers
					if j >= len(items) {
						j = g
					}
					got, err := s.GetItem(ctx, items[j].ID)
					if err != nil {
						b.Error(err)
						return
					}
					if _, err := s.GetBatch(ctx, got.BatchID); err != nil {
						b.Error(err)
						return
					}
					if _, err := s.GetHost(ctx, got.HostID); err != nil {
						b.Error(err)
						return
					}
					seq := seqs[j]
					got.Seq, got.Status, got.Step = seq+1, ItemConfirming, "account-probe"
					if err := s.CompleteStep(ctx, got, seq, benchAttempt("account-probe", seq)); err != nil {
						b.Error(err)
						return
					}
					seqs[j] = seq + 1
				}
			})
		})
	}
}
