# What every non-interactive bash on a lab machine sources first (BASH_ENV=/.lab/bashenv.sh).
#
# `bash -c CMD` speaks as EL7's bash 4.2 does: "bash: X: command not found", where the
# machine's newer bash may say "bash: line 1: X: ..." (scripts and `bash -s` keep bash's own
# wording, the same in both).
if [ -n "${BASH_EXECUTION_STRING+set}" ]; then
    command_not_found_handle() {
        printf '%s: %s: command not found\n' "$0" "$1" >&2
        return 127
    }
fi

# The lab's scaled clock for `date` and `sleep`, in bash so that they need no fork;
# /usr/bin/date and /usr/bin/sleep use it for everyone else. /.lab/clock is written by
# lab/sandbox.py:
#   SPEED_PPM WALL0_US REAL0_US PACE_PPM
# simulated time = WALL0 + (real time - REAL0) * SPEED; a simulated second of sleep takes
# PACE_PPM real microseconds (the speed, and a slow-host fault's factor).

__lab_clock() {
    local speed wall0 real0 now elapsed
    read -r speed wall0 real0 __lab_pace < /.lab/clock || return 1
    now=${EPOCHREALTIME/./}
    elapsed=$(( now - real0 ))
    __lab_now=$(( wall0 + elapsed / 1000000 * speed + elapsed % 1000000 * speed / 1000000 ))
}

date() {
    local - fmt= utc= slow= arg s ns n
    set +x
    for arg; do
        case $arg in
            -d*|--date*|-f*|--file*|-r*|--reference*|-s*|--set*)
                (exec -a date /.lab/usr/bin/date "$@"); return ;;  # not about now
            -u|--utc|--universal) utc=1 ;;
            +*) fmt=${arg#+} ;;
            *) slow=1 ;;
        esac
    done
    __lab_clock || return 1
    s=$(( __lab_now / 1000000 ))
    printf -v ns %06d000 $(( __lab_now % 1000000 ))
    [ -z "$utc" ] || local -x TZ=UTC0
    # What strftime does exactly as GNU date does, printf does here; the rest goes to date.
    case $fmt in
        *%%*|*%:*|*%q*|*%[-_0^#]N*|*[\\\)]*) slow=1 ;;
    esac
    if [ -n "$slow" ]; then
        (exec -a date /.lab/usr/bin/date -d "@$s.$ns" "$@")
        return
    fi
    if [[ $fmt == *%[1-9]N* ]]; then
        for n in 1 2 3 4 5 6 7 8 9; do fmt=${fmt//%${n}N/${ns:0:n}}; done
    fi
    fmt=${fmt//%N/$ns}
    printf "%(${fmt:-%a %b %e %H:%M:%S %Z %Y})T\n" "$s"
}

sleep() {
    local - total=0 arg n int frac unit
    set +x
    for arg; do  # N[.N][smhd] each, added up; anything else to the real sleep
        unit=${arg: -1}
        case $unit in [smhd]) arg=${arg%?} ;; *) unit=s ;; esac
        case $arg in
            ''|.|*[!0-9.]*|*.*.*) (exec -a sleep /.lab/usr/bin/sleep "$@"); return ;;
        esac
        int=${arg%%.*} frac=${arg#"$int"}
        frac=${frac#.}000000
        n=$(( 10#0$int * 1000000 + 10#${frac:0:6} ))
        case $unit in
            m) n=$(( n * 60 )) ;; h) n=$(( n * 3600 )) ;; d) n=$(( n * 86400 )) ;;
        esac
        total=$(( total + n ))
    done
    [ $# -gt 0 ] || { (exec -a sleep /.lab/usr/bin/sleep); return; }
    __lab_clock || return 1
    n=$(( total / 1000000 * __lab_pace + total % 1000000 * __lab_pace / 1000000 ))
    printf -v n %d.%06d $(( n / 1000000 )) $(( n % 1000000 ))
    local fd
    exec {fd}<>/.lab/tick
    read -r -t "$n" -u "$fd" || :
    exec {fd}<&-
}
