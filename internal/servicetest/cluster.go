package servicetest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartRedisCluster starts a Redis Cluster of masters private
// redis-servers (no replicas) on free loopback ports, waits until every
// node reports the cluster ok, and returns their addresses. The nodes are
// killed when the test ends.
func StartRedisCluster(t testing.TB, masters int) []string {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		unavailable(t, "redis-cli: %v", err)
	}
	addrs := make([]string, masters)
	for i := range addrs {
		addrs[i] = startRedisServer(t,
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000").Addr
	}
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, addr := range addrs {
		if err := waitClusterOK(addr); err != nil {
			t.Fatalf("cluster node %s: %v", addr, err)
		}
	}
	return addrs
}

// waitClusterOK waits until the node at addr says cluster_state:ok.
func waitClusterOK(addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	defer c.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		info, err := c.ClusterInfo(ctx).Result()
		cancel()
		if err == nil && strings.Contains(info, "cluster_state:ok") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not ok after %v: %v %q", startTimeout, err, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
