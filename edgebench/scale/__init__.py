"""Scale-out engines: the study's tasks on a Ray cluster, one measurement at a time per board."""
