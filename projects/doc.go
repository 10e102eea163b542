// Package projects runs many isolated projects (Supabase "tenants") in one
// service: a project record with its limits (project.go), the projects
// file with ${VAR} substitution (file.go), which project a request is for
// (route.go), and the registry that starts, restarts and stops each
// project's own stack and routes requests to it (registry.go). See
// docs/projects.md.
package projects
