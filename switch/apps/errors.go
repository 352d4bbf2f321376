package apps

import (
	"fmt"

	"github.com/switchyard/switchyard/switch/registry"
)

// The Manager's errors wrap the registry's kinds, so that the admin API maps them
// to the same statuses (404, 400, 409, 403).
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{registry.ErrInvalid}, args...)...)
}

func notFoundf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{registry.ErrNotFound}, args...)...)
}

func conflictf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{registry.ErrConflict}, args...)...)
}
