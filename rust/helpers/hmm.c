// SPDX-License-Identifier: GPL-2.0

#include <linux/hmm.h>
#include <linux/mmu_notifier.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>

/* For long walks of kernel::mm::hmm (a device's populate of a huge range). */
/* Lockdep sees what runs between the two as taken in memory reclaim. */
__rust_helper void rust_helper_lockdep_reclaim_enter(void)
{
	fs_reclaim_acquire(GFP_KERNEL);
}

__rust_helper void rust_helper_lockdep_reclaim_exit(void)
{
	fs_reclaim_release(GFP_KERNEL);
}

__rust_helper bool rust_helper_fatal_signal_pending(struct task_struct *p)
{
	return fatal_signal_pending(p);
}

#ifdef CONFIG_MMU_NOTIFIER
__rust_helper void rust_helper_mmu_interval_set_seq(struct mmu_interval_notifier *interval_sub,
						     unsigned long cur_seq)
{
	mmu_interval_set_seq(interval_sub, cur_seq);
}

__rust_helper bool rust_helper_mmu_interval_read_retry(struct mmu_interval_notifier *interval_sub,
							unsigned long seq)
{
	return mmu_interval_read_retry(interval_sub, seq);
}

__rust_helper bool rust_helper_mmu_interval_check_retry(struct mmu_interval_notifier *interval_sub,
							 unsigned long seq)
{
	return mmu_interval_check_retry(interval_sub, seq);
}

__rust_helper bool rust_helper_mmu_notifier_range_blockable(const struct mmu_notifier_range *range)
{
	return mmu_notifier_range_blockable(range);
}
#endif

#ifdef CONFIG_HMM_MIRROR
__rust_helper unsigned int rust_helper_hmm_pfn_to_map_order(unsigned long hmm_pfn)
{
	return hmm_pfn_to_map_order(hmm_pfn);
}
#endif

#ifdef CONFIG_MIGRATION
#include <linux/highmem.h>
#include <linux/migrate.h>
#include <linux/pagemap.h>

__rust_helper unsigned long rust_helper_migrate_pfn(unsigned long pfn)
{
	return migrate_pfn(pfn);
}

__rust_helper struct page *rust_helper_migrate_pfn_to_page(unsigned long mpfn)
{
	return migrate_pfn_to_page(mpfn);
}

__rust_helper unsigned long rust_helper_page_to_pfn(const struct page *page)
{
	return page_to_pfn(page);
}

__rust_helper void rust_helper_lock_page(struct page *page)
{
	lock_page(page);
}

__rust_helper void rust_helper_put_page(struct page *page)
{
	put_page(page);
}

__rust_helper void rust_helper_copy_highpage(struct page *to, struct page *from)
{
	copy_highpage(to, from);
}

__rust_helper struct page *rust_helper_pfn_to_page(unsigned long pfn)
{
	return pfn_to_page(pfn);
}

__rust_helper struct folio *rust_helper_page_folio(struct page *page)
{
	return page_folio(page);
}

__rust_helper unsigned int rust_helper_folio_order(const struct folio *folio)
{
	return folio_order(folio);
}

__rust_helper bool rust_helper_is_zone_device_page(const struct page *page)
{
	return is_zone_device_page(page);
}

__rust_helper struct folio *rust_helper_folio_alloc(gfp_t gfp, unsigned int order)
{
	return folio_alloc(gfp, order);
}
#endif

#ifdef CONFIG_DEVICE_PRIVATE
#include <linux/memremap.h>

__rust_helper int rust_helper_page_ref_count(const struct page *page)
{
	return page_ref_count(page);
}

__rust_helper struct dev_pagemap *rust_helper_page_pgmap(const struct page *page)
{
	return page_pgmap(page);
}

__rust_helper bool rust_helper_is_device_private_page(const struct page *page)
{
	return is_device_private_page(page);
}

__rust_helper void rust_helper_zone_device_folio_init(struct folio *folio,
						       struct dev_pagemap *pgmap,
						       unsigned int order)
{
	zone_device_folio_init(folio, pgmap, order);
}
#endif
