package cachelayer

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// RouteRedisLogs sends go-redis's own log lines (a failed dial, say) to
// log at debug level. go-redis keeps one logger per process, so main calls
// this once. L2 failures are counted in Stats and shown by Health; a line
// per failed dial during an outage would only bury the log.
func RouteRedisLogs(log *slog.Logger) {
	redis.SetLogger(redisLog{log})
}

type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
