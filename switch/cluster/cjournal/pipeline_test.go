package cjournal_test

import (
	"github.com/switchyard/switchyard/switch/cluster/cjournal"
	"github.com/switchyard/switchyard/switch/pipeline"
)

// The cluster journal plays every role the pipeline needs of a journal.
var _ pipeline.Journal = (*cjournal.Journal)(nil)
