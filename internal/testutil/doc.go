// Package testutil starts real berthd processes on temporary roots and
// builds image fixtures for integration tests.
package testutil
