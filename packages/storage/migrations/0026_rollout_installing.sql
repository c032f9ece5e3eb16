-- When an agent said it is installing an offered release: the artifact was downloaded and verified
-- and sits beside the running version, and the switch comes next. The row stays 'offered' (the offer
-- timeout and the ring's open count still apply to it); the console shows it as installing.
ALTER TABLE rollout_agents ADD COLUMN installing_at timestamptz;
