package layers

import (
	"fmt"
	"time"
)

type timeT = time.Time

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
