package redisconn

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RouteLogs sends go-redis's own log lines (dial failures, sentinel master switches)
// into l instead of bare lines on stderr, so they sit in the structured log with
// everything else. go-redis's logger is process-wide; call it once from main.
func RouteLogs(l *slog.Logger) { redis.SetLogger(logAdapter{l}) }

type logAdapter struct{ l *slog.Logger }

func (a logAdapter) Printf(ctx context.Context, format string, v ...interface{}) {
	msg := fmt.Sprintf(format, v...)
	level := slog.LevelInfo
	if strings.Contains(msg, "fail") || strings.Contains(msg, "error") || strings.Contains(msg, "unreachable") {
		level = slog.LevelWarn
	}
	a.l.Log(ctx, level, msg, "component", "go-redis")
}
