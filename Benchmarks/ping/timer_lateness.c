// How late an absolute clock_nanosleep wakes on this machine (BENCHMARKS.md, "Ping", the
// spin lead learned from the timer). COUNT sleeps GAP_NS apart, 1 µs timer slack like the probe.
//   cc -O2 -o timer_lateness Benchmarks/ping/timer_lateness.c && ./timer_lateness 20000 100000
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/prctl.h>
static long ns(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000L+t.tv_nsec;}
static int cmp(const void*a,const void*b){long x=*(long*)a,y=*(long*)b;return x<y?-1:x>y;}
int main(int c,char**v){if(c!=3){fprintf(stderr,"usage: timer_lateness COUNT GAP_NS\n");return 2;}prctl(PR_SET_TIMERSLACK,1000UL,0,0,0);int n=atoi(v[1]);long gap=atol(v[2]);long*l=malloc(n*sizeof(long));long t=ns()+1000000;
for(int i=0;i<n;i++){t+=gap;struct timespec ts={t/1000000000L,t%1000000000L};clock_nanosleep(CLOCK_MONOTONIC,TIMER_ABSTIME,&ts,0);l[i]=ns()-t;}
qsort(l,n,sizeof(long),cmp);printf("lateness us p1 %.1f p10 %.1f p50 %.1f p90 %.1f p99 %.1f\n",l[n/100]/1e3,l[n/10]/1e3,l[n/2]/1e3,l[n*9/10]/1e3,l[n*99/100]/1e3);}
