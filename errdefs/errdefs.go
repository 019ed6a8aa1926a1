package errdefs

import (
	"errors"
	"fmt"
	"net/http"
)

// Class sentinels. Wrap them with %w, or build a classed error with the
// helpers below when the message must read exactly like Docker's
// ("No such container: x") without a trailing class word.
var (
	ErrNotFound        = errors.New("not found")
	ErrConflict        = errors.New("conflict")
	ErrInvalidArgument = errors.New("invalid argument")
	ErrUnauthorized    = errors.New("unauthorized")
	ErrForbidden       = errors.New("forbidden")
	ErrNotModified     = errors.New("not modified")
	ErrUnavailable     = errors.New("unavailable")
	ErrNotImplemented  = errors.New("not implemented")
	ErrSystem          = errors.New("system error")
)

// classed carries a class without changing the message.
type classed struct {
	msg   string
	class error
	cause error
}

func (e *classed) Error() string { return e.msg }

// Is reports the class, so errors.Is(err, ErrNotFound) works.
func (e *classed) Is(target error) bool { return target == e.class }

// Unwrap exposes the underlying cause, if any.
func (e *classed) Unwrap() error { return e.cause }

func newf(class error, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &classed{msg: err.Error(), class: class, cause: errors.Unwrap(err)}
}

// NotFound returns an error of class ErrNotFound with exactly the given message.
func NotFound(format string, args ...any) error { return newf(ErrNotFound, format, args...) }

// Conflict returns an error of class ErrConflict.
func Conflict(format string, args ...any) error { return newf(ErrConflict, format, args...) }

// InvalidArgument returns an error of class ErrInvalidArgument.
func InvalidArgument(format string, args ...any) error {
	return newf(ErrInvalidArgument, format, args...)
}

// Unauthorized returns an error of class ErrUnauthorized.
func Unauthorized(format string, args ...any) error { return newf(ErrUnauthorized, format, args...) }

// Forbidden returns an error of class ErrForbidden.
func Forbidden(format string, args ...any) error { return newf(ErrForbidden, format, args...) }

// NotModified returns an error of class ErrNotModified (HTTP 304).
func NotModified(format string, args ...any) error { return newf(ErrNotModified, format, args...) }

// Unavailable returns an error of class ErrUnavailable.
func Unavailable(format string, args ...any) error { return newf(ErrUnavailable, format, args...) }

// NotImplemented returns an error of class ErrNotImplemented.
func NotImplemented(format string, args ...any) error {
	return newf(ErrNotImplemented, format, args...)
}

// System returns an error of class ErrSystem (HTTP 500).
func System(format string, args ...any) error { return newf(ErrSystem, format, args...) }

// Is* helpers read the class anywhere in the chain.
func IsNotFound(err error) bool        { return errors.Is(err, ErrNotFound) }
func IsConflict(err error) bool        { return errors.Is(err, ErrConflict) }
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }
func IsNotModified(err error) bool     { return errors.Is(err, ErrNotModified) }

// HTTPStatus maps an error's class to the status code the Engine API uses.
// Unclassed errors are 500.
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrInvalidArgument):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrNotModified):
		return http.StatusNotModified
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrNotImplemented):
		return http.StatusNotImplemented
	default:
		return http.StatusInternalServerError
	}
}
