function __knockc_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __knockc_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __knockc_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __knockc_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __knockc_parse_tokens -S
    set -l unparsed_tokens (__knockc_tokens -pc)
    switch $unparsed_tokens[1]
    case 'knockc'
        __knockc_parse_subcommand 0 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'check'
            __knockc_parse_subcommand -r 1 'kernel' 'format=' 'version' 'h/help'
        case 'compile'
            __knockc_parse_subcommand 1 'format=' 'version' 'h/help'
        case 'diff'
            __knockc_parse_subcommand 1 'version' 'h/help'
        case 'apply'
            __knockc_parse_subcommand 1 'confirm=' 'force' 'version' 'h/help'
        case 'confirm'
            __knockc_parse_subcommand 0 'table=' 'version' 'h/help'
        case 'status'
            __knockc_parse_subcommand 0 'table=' 'json' 'version' 'h/help'
        case 'revoke'
            __knockc_parse_subcommand 1 'sequence=' 'table=' 'version' 'h/help'
        case 'watch'
            __knockc_parse_subcommand 1 'table=' 'interval=' 'metrics=' 'metrics-textfile=' 'log-level=' 'version' 'h/help'
        case 'knock'
            __knockc_parse_subcommand -r 2 'spec=' 'sequence=' 'secret=' 'spa=' 'rotate=' 'ports=' 'every=' 'skew=' 'slots=' 'delay=' 'then-connect=' 'proxy=' 'timeout=' 'retries=' '4' '6' 'version' 'h/help'
        case 'units'
            __knockc_parse_subcommand 0 'watcher' 'spec=' 'knockc=' 'install' 'directory=' 'version' 'h/help'
        case 'keygen'
            __knockc_parse_subcommand 1 'version' 'h/help'
        case 'import'
            __knockc_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'knockd'
                __knockc_parse_subcommand 1 'version' 'h/help'
            end
        case 'help'
            __knockc_parse_subcommand -r 1 'version'
        end
    end
end

function __knockc_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __knockc_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __knockc_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __knockc_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__knockc_tokens -p)
    if test -z "$(__knockc_tokens -t)"
        set -l index (count (__knockc_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'knockc' -f
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc" version' -l 'version' -d 'Show the version.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc" -eq 1' -fa 'check' -d 'Validate specs, for CI and editors.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc" -eq 1' -fa 'compile' -d 'Print the ruleset a spec compiles to.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc" -eq 1' -fa 'diff' -d 'Show what `apply` would change, without changing anything.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc" -eq 1' -fa 'apply' -d 'Install the spec\'s table in this network namespace\'s kernel.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc" -eq 1' -fa 'confirm' -d 'Keep the table that `apply --confirm` installed.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc" -eq 1' -fa 'status' -d 'Show the live table\'s grants, knocks in progress and bans.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc" -eq 1' -fa 'revoke' -d 'Take a source\'s grants and knocks in progress away at once.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc" -eq 1' -fa 'watch' -d 'Report grants, expiries and early ends as JSON lines, run hooks, serve metrics (never in the packet path).'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc" -eq 1' -fa 'knock' -d 'Send a knock sequence to a host (the client).'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc" -eq 1' -fa 'units' -d 'Print or install the systemd unit that applies the spec at boot (and, with spa or rotate, a timer that re-applies it).'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc" -eq 1' -fa 'keygen' -d 'Write a new secret for rotating knocks and one-packet authorization.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc" -eq 1' -fa 'import' -d 'Translate another port knocking tool\'s configuration into a knockc spec.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc check" -ge 1' -fa '(set -l exts \'yaml\' \'yml\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc check" kernel' -l 'kernel' -d 'Also load each compiled spec into the running kernel, in a throwaway namespace.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc check" format' -l 'format' -d 'text: diagnostics on stderr; json: a machine-readable report on stdout; github: GitHub Actions annotations on stdout.' -rfka 'text json github'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc check" version' -l 'version' -d 'Show the version.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc check" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc compile" -eq 1' -fa '(set -l exts \'yaml\' \'yml\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc compile" format' -l 'format' -d 'nft: an nft script; json: the same transaction in libnftables\' JSON.' -rfka 'nft json'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc compile" version' -l 'version' -d 'Show the version.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc compile" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc diff" -eq 1' -fa '(set -l exts \'yaml\' \'yml\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc diff" version' -l 'version' -d 'Show the version.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc diff" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc apply" -eq 1' -fa '(set -l exts \'yaml\' \'yml\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc apply" confirm' -l 'confirm' -d 'Revert unless `knockc confirm` runs within this time, as 60s or 5m.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc apply" force' -l 'force' -d 'End a pending apply --confirm of this table (it will not revert) and apply.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc apply" version' -l 'version' -d 'Show the version.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc apply" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc confirm" table' -l 'table' -d 'The table, as the spec\'s `table:` names it.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc confirm" version' -l 'version' -d 'Show the version.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc confirm" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc status" table' -l 'table' -d 'The nftables table (family inet) to read.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc status" json' -l 'json' -d 'Print one JSON object instead of the tables.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc status" version' -l 'version' -d 'Show the version.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc status" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc revoke" sequence' -l 'sequence' -d 'Only this sequence\'s progress and the ports it opens.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc revoke" table' -l 'table' -d 'The table, as the spec\'s `table:` names it.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc revoke" version' -l 'version' -d 'Show the version.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc revoke" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc watch" -eq 1' -fa '(set -l exts \'yaml\' \'yml\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc watch" table' -l 'table' -d 'The table, as the spec\'s `table:` names it (default: the spec\'s, else knockc).' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc watch" interval' -l 'interval' -d 'How often to read the sets, as 250ms; events arrive within this much of the kernel\'s change.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc watch" metrics' -l 'metrics' -d 'Serve Prometheus metrics on this numeric address and port, as 127.0.0.1:9464 or [::1]:9464. Off by default.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc watch" metrics-textfile' -l 'metrics-textfile' -d 'Write the metrics to this file for node_exporter\'s textfile collector, replaced atomically. Off by default.' -rfa '(for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.\'prom\';printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc watch" log-level' -l 'log-level' -d 'Log level on stderr: trace, debug, info, notice, warning, error or critical.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc watch" version' -l 'version' -d 'Show the version.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc watch" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" spec' -l 'spec' -d 'A spec to take the knocks from (with --sequence).' -rfa '(set -l exts \'yaml\' \'yml\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" sequence' -l 'sequence' -d 'The sequence of --spec to send.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" secret' -l 'secret' -d 'The secret of a `spa` sequence, without --spec (with --sequence and --spa).' -rF
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" spa' -l 'spa' -d 'Send the authorized datagram of --sequence to this port, as udp/62201 (with --secret).' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" rotate' -l 'rotate' -d 'Send the rotating knocks of --sequence with these protocols, as tcp,udp,tcp (with --secret and --ports).' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" ports' -l 'ports' -d 'With --rotate: the sequence\'s port range, as 20000-40000.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" every' -l 'every' -d 'With --spa or --rotate: the window length of the sequence, as 30s.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" skew' -l 'skew' -d 'With --rotate: the windows either side that the server accepts (its `skew`).' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" slots' -l 'slots' -d 'With --spa: the slots per window of the sequence.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" delay' -l 'delay' -d 'The pause between two knocks, as 200ms or 1s; keep it under the sequence\'s step_timeout.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" then-connect' -l 'then-connect' -d 'After knocking, wait until this TCP port accepts a connection; exit 0 when it does, 1 when it does not.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" proxy' -l 'proxy' -d 'After knocking, connect to this TCP port once it accepts and relay stdin and stdout over the connection, as an ssh ProxyCommand; exit 1 when it does not open.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" timeout' -l 'timeout' -d 'How long --then-connect or --proxy waits for the port, as 5s.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" retries' -l 'retries' -d 'With --then-connect or --proxy: send the whole sequence again this many times while the port stays closed.' -rfka ''
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" 4' -s '4' -d 'Knock over IPv4 only (a name is otherwise knocked over each family it has).'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" 6' -s '6' -d 'Knock over IPv6 only.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" version' -l 'version' -d 'Show the version.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc knock" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc units" watcher' -l 'watcher' -d 'The watcher\'s unit, knockc-watch.service, instead of the boot unit.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc units" spec' -l 'spec' -d 'The spec the unit applies.' -rfa '(set -l exts \'yaml\' \'yml\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc units" knockc' -l 'knockc' -d 'The knockc executable the unit runs.' -rF
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc units" install' -l 'install' -d 'Write the unit into --directory instead of printing it.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc units" directory' -l 'directory' -d 'Where --install writes the units (default: /etc/systemd/system).' -rfa '(__knockc_complete_directories)'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc units" version' -l 'version' -d 'Show the version.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc units" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc keygen" -eq 1' -F
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc keygen" version' -l 'version' -d 'Show the version.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc keygen" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc import" version' -l 'version' -d 'Show the version.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc import" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc import" -eq 1' -fa 'knockd' -d 'Translate a knockd.conf into a knockc spec, printed on stdout.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_positional "knockc import knockd" -eq 1' -fa '(for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.\'conf\';printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc import knockd" version' -l 'version' -d 'Show the version.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc import knockd" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'knockc' -n '__knockc_should_offer_completions_for_flags_or_options "knockc help" version' -l 'version' -d 'Show the version.'
