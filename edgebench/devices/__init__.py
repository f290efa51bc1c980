"""Where measurements run: the local host or a remote device over SSH, both through the agent."""
