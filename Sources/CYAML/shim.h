// Debian's libyaml (libyaml-dev): KnockCore's YAMLComposer reads its events.
#include <yaml.h>
