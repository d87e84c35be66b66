package main

import (
	"github.com/kflcap/kflcap/dissect"
	"github.com/kflcap/kflcap/kfl"
)

func init() {
	compileQuery = func(src string) (func(*dissect.Entry) bool, error) {
		q, err := kfl.Compile(src)
		if err != nil {
			return nil, err
		}
		return q.Match, nil
	}
}
