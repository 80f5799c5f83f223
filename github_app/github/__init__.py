"""Everything that talks to GitHub's API: clients that retry and honour rate limits
(:mod:`.client`), the App's JWT and installation tokens (:mod:`.auth`), the side effects
on a repository (:mod:`.pulls`, :mod:`.issues`, merging: :mod:`.merges`), the installations (:mod:`.installations`)
and missed deliveries (:mod:`.redelivery`). Each side effect is looked up before it is
made, so a job can run again from the start."""
