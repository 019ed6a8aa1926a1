// Package formatter renders API objects as docker-compatible tables and Go templates.
package formatter
