package kfl

// celQuery is the compiled CEL form of a query.
type celQuery struct{}

func compileCEL(orig, body string, o *options) (*Query, error) {
	return nil, errorAt(orig, 0, "the CEL dialect is not available yet")
}
