package metrics

import (
	"errors"
	"strings"

	"github.com/hibiken/asynq"
)

func isQueueNotFound(err error) bool {
	return errors.Is(err, asynq.ErrQueueNotFound) || strings.Contains(err.Error(), "does not exist") ||
		strings.Contains(err.Error(), "not found")
}
