package loadtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairnhq/cairn/internal/readyfile"
)

// anyLoopback is the listen address that lets the kernel choose the port:
// every cairn child binds it and reports the port in its ready file, so no
// other process can take the port between the choice and the bind.
const anyLoopback = "127.0.0.1:0"

// startReady starts the cairn binary bin with args and
// --ready-file DIR/name.ready, and waits until the child has written the
// addresses it bound. A child that exits first is reported at once, with
// the end of its log.
func (g *procGroup) startReady(ctx context.Context, name, bin string, args, env []string) (*child, readyfile.Addrs, error) {
	path := filepath.Join(g.dir, name+".ready")
	_ = os.Remove(path)
	c, err := g.start(name, bin, append(args, "--ready-file", path), env)
	if err != nil {
		return nil, readyfile.Addrs{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, childReadyTimeout)
	defer cancel()
	a, err := readyfile.Wait(wctx, path, c.pid(), c.done)
	switch {
	case err == nil:
		return c, a, nil
	case errors.Is(err, readyfile.ErrExited):
		if strings.Contains(c.tail(), "flag provided but not defined: -ready-file") {
			return nil, a, fmt.Errorf("%s: %s predates --ready-file, which loadtest needs to learn the ports its children bound; build a newer cairn", name, bin)
		}
		return nil, a, c.failure("exited before it was ready")
	case ctx.Err() != nil:
		return nil, a, fmt.Errorf("wait for %s: %w", name, ctx.Err())
	default:
		return nil, a, c.failure(fmt.Sprintf("wrote no ready file in %s", childReadyTimeout))
	}
}
