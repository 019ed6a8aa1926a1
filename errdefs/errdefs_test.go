package errdefs

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
)

func TestClassesAndMessages(t *testing.T) {
	cases := []struct {
		err  error
		code int
		msg  string
	}{
		{NotFound("No such container: %s", "x"), http.StatusNotFound, "No such container: x"},
		{Conflict("name in use"), http.StatusConflict, "name in use"},
		{fmt.Errorf("open foo: %w", ErrInvalidArgument), http.StatusBadRequest, "open foo: invalid argument"},
		{fmt.Errorf("wrapped: %w", Forbidden("no")), http.StatusForbidden, "wrapped: no"},
		{NotModified("already started"), http.StatusNotModified, "already started"},
		{errors.New("boom"), http.StatusInternalServerError, "boom"},
	}
	for _, c := range cases {
		if got := HTTPStatus(c.err); got != c.code {
			t.Errorf("%q: status %d, want %d", c.err, got, c.code)
		}
		if c.err.Error() != c.msg {
			t.Errorf("message %q, want %q", c.err.Error(), c.msg)
		}
	}
}

func TestCauseKept(t *testing.T) {
	err := System("read layer: %w", io.ErrUnexpectedEOF)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, ErrSystem) {
		t.Fatalf("cause or class lost: %v", err)
	}
}
