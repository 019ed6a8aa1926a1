// Package drivertest is the shared conformance suite every registry storage driver must pass.
package drivertest
